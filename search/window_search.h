// Window-rule search for one head on one tile geometry: frame-distance groups with spatial
// window extents (shrinking with distance), an optional first-frame sink and global key blocks,
// chosen so that recall reaches the target on every sample at the lowest density.
//
// Scoring is exact for the rule vocabulary of compile_head_layout: the mass is summed per
// (query tile, key tile), prefix sums over each key frame give any window's mass in O(1), and
// the coverage of every (frame distance, extent) pair is tabulated once per head. A greedy pass
// then grows windows by the best recall gain per added block (a move at distance d also widens
// every nearer distance, so windows never grow with distance), and a pruning pass shrinks
// whatever is no longer needed. Variants with and without a sink and with 0..N global blocks
// are searched and the cheapest kept.
#pragma once

#include <memory>
#include <vector>

#include "plan/plan.h"
#include "plan/tile_geometry.h"
#include "analyzer/recall.h"

namespace sparseplan {

struct WindowSearchOptions {
  int max_global_blocks = 16;
  // A key block is a global candidate when, on every sample, it takes at least this many
  // times the uniform share (1 / video blocks) of the head's attention mass.
  double global_min_share = 8.0;
  bool sinks = true;
};

struct WindowChoice {
  WindowRule rule;
  double density = 1.0;
  std::vector<double> recall;  // per sample
  double worst_recall() const;
  double mean_recall() const;
};

class WindowSearch {
 public:
  // Throws std::invalid_argument when the mass does not fit the geometry.
  WindowSearch(const TileGeometry& geometry, const HeadMass& mass,
               const WindowSearchOptions& options = {});
  ~WindowSearch();
  WindowSearch(const WindowSearch&) = delete;
  WindowSearch& operator=(const WindowSearch&) = delete;

  // The lowest-density rule whose recall reaches `target` on every sample; when no rule short
  // of full windows does, the full rule (recall 1 up to rounding).
  WindowChoice best_for_recall(double target) const;

  // Candidate extents along h and w (tiles), ascending; the last is the grid's tile count.
  const std::vector<int>& extents_h() const;
  const std::vector<int>& extents_w() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Extents tried along an axis of n tiles: 1..8 step 1, then roughly x1.25, always ending at n.
std::vector<int> candidate_extents(int n);

}  // namespace sparseplan
