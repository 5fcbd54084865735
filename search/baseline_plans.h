// The fixed sparsity patterns people use today, expressed as plans so they can be compiled,
// run and scored like searched plans.
//  - sliding tile (Sliding Tile Attention): every head sees a 3D window of tiles;
//  - radial (Radial Attention): the spatial window halves each time the frame distance doubles;
//  - spatial/temporal (Sparse VideoGen): half the heads see their own frame(s), the other half
//    the same spatial position in every frame, all see the first frame.
#pragma once

#include <array>
#include <string>

#include "plan/model_preset.h"
#include "plan/plan.h"

namespace sparseplan {

enum class BaselineKind { SlidingTile, Radial, SpatialTemporal };

struct BaselineOptions {
  BaselineKind kind = BaselineKind::SlidingTile;
  std::array<int, 3> tile{4, 4, 4};
  int block_size = 64;
  // Sliding tile: window extent in tiles (frames, height, width), centred on the query tile.
  std::array<int, 3> window{3, 3, 3};
  // Radial: extent in tiles of the window at frame distance <= 1 (0 = whole frame).
  std::array<int, 2> radial_base{0, 0};
  Schedule schedule;
};

BaselineKind parse_baseline_kind(const std::string& name);
const char* baseline_kind_name(BaselineKind kind);

// Throws std::invalid_argument for options that do not fit the grid.
Plan make_baseline_plan(const ModelPreset& preset, const Grid& grid, const BaselineOptions& o);

// Baseline rules on their own, for searches and comparisons over a given geometry.
HeadRule sliding_tile_rule(const std::array<int, 3>& window_tiles);
HeadRule radial_rule(int tiles_f, int base_h, int base_w);
HeadRule spatial_rule(int tiles_h, int tiles_w);
HeadRule temporal_rule(int tiles_f);

}  // namespace sparseplan
