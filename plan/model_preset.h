// Model presets (configs/models/NAME.json): attention shape, text layout and the token grids
// of common resolutions, so plans can be made for models whose weights are not at hand.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "plan/plan.h"

namespace sparseplan {

struct ModelPreset {
  ModelInfo model;
  TextLayout text;
  std::string description;
  std::map<std::string, Grid> grids;  // resolution name -> token grid
};

// `name_or_path` is a preset name (looked up in $SPARSEPLAN_CONFIGS/models or the source
// tree's configs/models) or a path to a preset JSON file. Throws naming the problem.
ModelPreset load_model_preset(const std::string& name_or_path);
std::vector<std::string> list_model_presets();
std::string configs_dir();

// "21,30,52" or "21x30x52", or a resolution name of the preset.
Grid parse_grid(const std::string& text);
Grid resolve_grid(const ModelPreset& preset, const std::string& grid_or_resolution);

}  // namespace sparseplan
