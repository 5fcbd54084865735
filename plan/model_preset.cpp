#include "plan/model_preset.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <regex>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "plan/limits.h"

namespace sparseplan {

namespace fs = std::filesystem;
using nlohmann::json;

std::string configs_dir() {
  if (const char* env = std::getenv("SPARSEPLAN_CONFIGS")) return env;
  return std::string(SPARSEPLAN_SOURCE_DIR) + "/configs";
}

std::vector<std::string> list_model_presets() {
  std::vector<std::string> names;
  const fs::path dir = fs::path(configs_dir()) / "models";
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

ModelPreset load_model_preset(const std::string& name_or_path) {
  fs::path path = name_or_path;
  if (path.extension() != ".json") path = fs::path(configs_dir()) / "models" / (name_or_path + ".json");
  if (!fs::exists(path)) {
    std::string known;
    for (const std::string& n : list_model_presets()) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown model preset '" + name_or_path + "' (known: " + known + ")");
  }
  const std::string source = path.string();
  json j;
  try {
    j = json::parse(read_text_file(source));
  } catch (const json::exception& e) {
    throw std::runtime_error(source + ": malformed JSON: " + e.what());
  }
  ModelPreset p;
  try {
    p.model.id = j.at("id").get<std::string>();
    const int64_t layers = j.at("layers").get<int64_t>();
    const int64_t heads = j.at("heads").get<int64_t>();
    const int64_t head_dim = j.at("head_dim").get<int64_t>();
    try {
      check_model_shape(layers, heads, head_dim, "");
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(source + ": " + e.what());
    }
    p.model.layers = int(layers);
    p.model.heads = int(heads);
    p.model.head_dim = int(head_dim);
    p.description = j.value("description", "");
    const json& text = j.at("text");
    const std::string pos = text.at("position").get<std::string>();
    p.text.tokens = text.at("tokens").get<int>();
    p.text.position = pos == "before"  ? TextPosition::Before
                      : pos == "after" ? TextPosition::After
                                       : TextPosition::None;
    for (auto it = j.at("grids").begin(); it != j.at("grids").end(); ++it)
      p.grids[it.key()] = {it->at("frames").get<int>(), it->at("height").get<int>(),
                           it->at("width").get<int>()};
  } catch (const json::exception& e) {
    throw std::runtime_error(source + ": bad model preset: " + e.what());
  }
  return p;
}

Grid parse_grid(const std::string& text) {
  static const std::regex pattern(R"(^\s*(\d+)\s*[,x]\s*(\d+)\s*[,x]\s*(\d+)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, pattern))
    throw std::invalid_argument("grid '" + text + "': expected F,H,W (three positive integers)");
  // Digits only (the pattern), so the one failure left is a value beyond the limit.
  int extents[3] = {};
  const char* names[3] = {"frames", "height", "width"};
  for (int i = 0; i < 3; ++i) {
    const std::string digits = m[size_t(i) + 1];
    long long v = 0;
    try {
      v = std::stoll(digits);
    } catch (const std::out_of_range&) {
      v = std::numeric_limits<long long>::max();
    }
    if (v > kMaxGridExtent)
      throw std::invalid_argument("grid '" + text + "': " + names[i] + " " + digits +
                                  " exceeds the limit of " + std::to_string(kMaxGridExtent) +
                                  " tokens");
    extents[i] = int(v);
  }
  const Grid g{extents[0], extents[1], extents[2]};
  if (g.frames <= 0 || g.height <= 0 || g.width <= 0)
    throw std::invalid_argument("grid '" + text + "': expected three positive integers");
  return g;
}

Grid resolve_grid(const ModelPreset& preset, const std::string& grid_or_resolution) {
  auto it = preset.grids.find(grid_or_resolution);
  if (it != preset.grids.end()) return it->second;
  try {
    return parse_grid(grid_or_resolution);
  } catch (const std::invalid_argument&) {
    std::string known;
    for (const auto& [name, g] : preset.grids) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("grid '" + grid_or_resolution + "': expected F,H,W or one of " +
                                preset.model.id + "'s resolutions (" + known + ")");
  }
}

}  // namespace sparseplan
