// A plan compiled for its grid: per (layer, head), for every query block, the sorted key blocks
// it attends to (CSR, int32) over the padded tile-order sequence of tile_geometry.h. This is
// what the attention kernels consume. Layers are compiled one at a time to keep memory lean.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/plan.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

struct BlockLayout {
  int num_q_blocks = 0;
  int num_k_blocks = 0;
  RuleKind kind = RuleKind::Dense;      // Online heads compile to dense until re-selected
  std::vector<int32_t> row_offsets;     // [num_q_blocks + 1]
  std::vector<int32_t> col_indices;     // [row_offsets.back()], sorted within each row

  int64_t nnz() const { return row_offsets.empty() ? 0 : row_offsets.back(); }
  double density() const {
    return num_q_blocks == 0 ? 0.0 : double(nnz()) / (double(num_q_blocks) * num_k_blocks);
  }
};

// Throws std::invalid_argument when the rule does not fit the geometry.
BlockLayout compile_head_layout(const TileGeometry& geometry, const HeadRule& rule);
std::vector<BlockLayout> compile_layer_layouts(const Plan& plan, const TileGeometry& geometry,
                                               int layer);

// Row-major [num_q_blocks x num_k_blocks] 0/1 mask, for pictures and tests.
std::vector<uint8_t> layout_to_mask(const BlockLayout& layout);
BlockLayout mask_to_layout(const std::vector<uint8_t>& mask, int num_q_blocks, int num_k_blocks);

}  // namespace sparseplan
