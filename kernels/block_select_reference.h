// CPU reference of online block selection: per query block, the fewest key blocks whose mass
// reaches a fraction of the row's total (or the top k), within bounds, as CSR. The CUDA kernel
// (kernels/block_select.cu) must produce the same CSR.
#pragma once

#include <cstdint>
#include <vector>

namespace sparseplan::ref {

struct SelectionRule {
  float mass_target = 0.9f;  // fraction of the row's total mass to reach (when top_k <= 0)
  int top_k = 0;             // > 0: keep the top_k heaviest blocks instead
  int min_blocks = 1;        // at least this many blocks per row
  int max_blocks = 0;        // at most this many (forced blocks excepted); <= 0: no cap
};

// Order of preference: forced blocks first, then by mass descending, ties by lower column.
// The count is the rule's (mass prefix or top_k), raised to min_blocks and to the number of
// forced blocks, lowered to max_blocks (never below the forced count) and to num_k_blocks.
// Negative and NaN masses count as 0. mass is row-major [rows x num_k_blocks]; forced
// (may be null) is [num_k_blocks], nonzero = always kept (text blocks, sinks).
// row_offsets gets rows + 1 entries, col_indices the sorted columns of each row.
void select_blocks(const SelectionRule& rule, const float* mass, int64_t rows, int num_k_blocks,
                   const uint8_t* forced, std::vector<int32_t>& row_offsets,
                   std::vector<int32_t>& col_indices);

// Throws std::invalid_argument naming the bad field.
void check_selection_rule(const SelectionRule& rule);

}  // namespace sparseplan::ref
