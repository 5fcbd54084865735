#include "search/baseline_plans.h"

#include <algorithm>
#include <stdexcept>

#include "plan/tile_geometry.h"

namespace sparseplan {

BaselineKind parse_baseline_kind(const std::string& name) {
  if (name == "sliding-tile") return BaselineKind::SlidingTile;
  if (name == "radial") return BaselineKind::Radial;
  if (name == "spatial-temporal") return BaselineKind::SpatialTemporal;
  throw std::invalid_argument("baseline kind '" + name +
                              "': expected sliding-tile, radial or spatial-temporal");
}

const char* baseline_kind_name(BaselineKind kind) {
  switch (kind) {
    case BaselineKind::SlidingTile: return "sliding-tile";
    case BaselineKind::Radial: return "radial";
    case BaselineKind::SpatialTemporal: return "spatial-temporal";
  }
  return "?";
}

HeadRule sliding_tile_rule(const std::array<int, 3>& window_tiles) {
  HeadRule rule;
  rule.kind = RuleKind::Window;
  rule.window.groups.push_back({(window_tiles[0] - 1) / 2, window_tiles[1], window_tiles[2]});
  return rule;
}

HeadRule radial_rule(int tiles_f, int base_h, int base_w) {
  HeadRule rule;
  rule.kind = RuleKind::Window;
  // Distance bands 0-1, 2-3, 4-7, 8-15, ...: the window halves each time the distance doubles.
  int h = base_h, w = base_w, max_distance = 1;
  while (true) {
    rule.window.groups.push_back({max_distance, h, w});
    if (max_distance >= tiles_f - 1 || (h == 1 && w == 1)) break;
    h = std::max(1, h / 2);
    w = std::max(1, w / 2);
    max_distance = 2 * max_distance + 1;
  }
  return rule;
}

HeadRule spatial_rule(int tiles_h, int tiles_w) {
  HeadRule rule;
  rule.kind = RuleKind::Window;
  rule.window.groups.push_back({0, tiles_h, tiles_w});
  rule.window.sink_frames = {0};
  return rule;
}

HeadRule temporal_rule(int tiles_f) {
  HeadRule rule;
  rule.kind = RuleKind::Window;
  rule.window.groups.push_back({tiles_f - 1, 1, 1});
  rule.window.sink_frames = {0};
  return rule;
}

Plan make_baseline_plan(const ModelPreset& preset, const Grid& grid, const BaselineOptions& o) {
  Plan plan;
  plan.model = preset.model;
  plan.grid = grid;
  plan.text = preset.text;
  plan.block_size = o.block_size;
  plan.tile = o.tile;
  plan.schedule = o.schedule;
  const TileGeometry g = make_tile_geometry(plan);
  for (int i = 0; i < 3; ++i)
    if (o.window[i] <= 0) throw std::invalid_argument("window: expected 3 positive integers");

  HeadRule even, odd;
  std::string what;
  switch (o.kind) {
    case BaselineKind::SlidingTile: {
      const std::array<int, 3> w{std::min(o.window[0], 2 * g.tiles_f - 1),
                                 std::min(o.window[1], g.tiles_h), std::min(o.window[2], g.tiles_w)};
      even = odd = sliding_tile_rule(w);
      what = "sliding tile attention, window " + std::to_string(w[0]) + "x" +
             std::to_string(w[1]) + "x" + std::to_string(w[2]) + " tiles";
      break;
    }
    case BaselineKind::Radial: {
      const int bh = o.radial_base[0] > 0 ? std::min(o.radial_base[0], g.tiles_h) : g.tiles_h;
      const int bw = o.radial_base[1] > 0 ? std::min(o.radial_base[1], g.tiles_w) : g.tiles_w;
      even = odd = radial_rule(g.tiles_f, bh, bw);
      what = "radial attention, window halving as frame distance doubles";
      break;
    }
    case BaselineKind::SpatialTemporal:
      even = spatial_rule(g.tiles_h, g.tiles_w);
      odd = temporal_rule(g.tiles_f);
      what = "Sparse VideoGen spatial (even heads) and temporal (odd heads) patterns";
      break;
  }
  plan.description = std::string(baseline_kind_name(o.kind)) + " baseline for " +
                     preset.model.id + ": " + what;
  plan.layers.assign(size_t(preset.model.layers), std::vector<HeadRule>());
  for (auto& heads : plan.layers)
    for (int h = 0; h < preset.model.heads; ++h) heads.push_back(h % 2 == 0 ? even : odd);
  return plan;
}

}  // namespace sparseplan
