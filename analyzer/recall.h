// Recall of block sets against captured block attention mass, and the oracle that picks, per
// query block, the fewest key blocks reaching a recall level.
//
// Conventions shared by the analyzer, the search and the comparison:
// - recall of a head on one sample = token-weighted mean, over the video query blocks, of the
//   fraction of each query block's attention mass that its selected key blocks cover (text key
//   blocks are always attended; text query rows are always dense and do not count);
// - density = selected (query block, key block) pairs over the video query rows divided by
//   video query blocks x all key blocks. Text key columns, always attended, count as selected.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/block_layout.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

// Block attention mass of one head on one tile geometry, over samples (prompt x step).
struct HeadMass {
  int samples = 0;
  int blocks = 0;             // query blocks = key blocks = geometry.total_blocks
  std::vector<float> values;  // [samples][blocks][blocks], rows sum to 1 (or 0 when empty)

  const float* sample(int s) const { return values.data() + size_t(s) * blocks * blocks; }
  float* sample(int s) { return values.data() + size_t(s) * blocks * blocks; }
};

// Throws std::invalid_argument when the mass does not have the geometry's block count or a
// value is negative or not finite.
void check_head_mass(const TileGeometry& geometry, const HeadMass& mass);

// Valid query tokens of each block for video blocks, 0 for text blocks.
std::vector<double> video_query_tokens(const TileGeometry& geometry);

// Per query block, the weight that turns covered mass into the head's recall on one sample:
// tokens / row sum, normalised to sum to 1 over video rows that carry mass.
std::vector<double> recall_row_weights(const std::vector<double>& query_tokens, const float* mass,
                                       int blocks);

// Recall of a compiled layout on one sample (layout over geometry.total_blocks).
double layout_recall(const BlockLayout& layout, const float* mass,
                     const std::vector<double>& row_weights);
double layout_density(const TileGeometry& geometry, const BlockLayout& layout);

// Recall of a 0/1 mask [blocks x blocks] on one sample.
double mask_recall(const std::vector<uint8_t>& mask, const float* mass,
                   const std::vector<double>& row_weights, int blocks);

// Per query block, the fewest key blocks whose mass reaches `recall` (largest first); rows
// without mass select nothing. Returns a [blocks x blocks] 0/1 mask over video query rows
// (text query rows are left empty: they are dense anyway) and fills `density` when given.
std::vector<uint8_t> oracle_row_mask(const TileGeometry& geometry, const float* mass,
                                     double recall, double* density = nullptr);

// Oracle recall-vs-density curve of one sample: for every level, the density of the per-row
// oracle sets at that recall.
struct RecallCurve {
  std::vector<double> levels;
  std::vector<double> density;
};
RecallCurve oracle_recall_curve(const TileGeometry& geometry, const float* mass,
                                const std::vector<double>& levels);

// Recall of per-row top-k (k = round(density * key blocks), at least 1) chosen per input: the
// oracle a static plan of that density is compared against.
double oracle_topk_recall(const TileGeometry& geometry, const float* mass,
                          const std::vector<double>& row_weights, double density);

// |a & b| / |a | b| over two 0/1 masks of equal size; 1 when both are empty.
double mask_jaccard(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

// The default levels of recall curves: 0.5 ... 0.99.
const std::vector<double>& default_recall_levels();

}  // namespace sparseplan
