// Pooled compensation of dropped key blocks (plan `compensation: pooled_kv`). Block-sparse
// attention drops the mass of every key block a layout leaves out; here each dropped block j
// of a query row enters again as one key, mean(k_j), with logit q . mean(k_j) * scale +
// log(n_j) (n_j its valid keys), and one value, mean(v_j). That is exact when a block's keys
// and values are all equal and close when they vary little, as in the spatially compact tiles
// of a plan. The coarse attention has one key per block, 1/block_size of dense attention.
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>

namespace sparseplan {

// Which key blocks each query block attends: bool [B, H, nqb, nkb] from a layout's
// row_offsets int32 [B, H, nqb + 1] (global offsets) and col_indices int32, on the CPU.
at::Tensor kept_blocks(const at::Tensor& row_offsets, const at::Tensor& col_indices,
                       int64_t num_key_blocks);

// Merges the sparse result (out [B, Np, H, D], lse float32 [B, H, Np] natural log, -inf for
// rows that saw no key) with the pooled attention over the blocks `kept` leaves out. q, k, v
// [B, Np, H, D] in tile order (Np = blocks x block_size, padding rows hold zeros); kv_valid:
// per key block its valid keys (int32 [nkb]; none: every block full). Heads of k and v equal
// q's. Returns float32 [B, Np, H, D]. Throws std::invalid_argument on mismatched shapes.
at::Tensor compensate_dropped_blocks(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& out, const at::Tensor& lse,
                                     const at::Tensor& kept, int64_t block_size,
                                     const std::optional<at::Tensor>& kv_valid,
                                     std::optional<double> scale = std::nullopt);

}  // namespace sparseplan
