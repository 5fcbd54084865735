// Block-sparse attention in plain LibTorch ops, for devices and block sizes the CUDA kernels do
// not cover (above all the CPU, where the torch op's float64 reference is far too slow to run a
// model). Same contract and semantics as sparseplan::ops::block_sparse_attention
// (runtime/torch_ops.h): q, k, v [B, N, H, D] (k and v may have fewer heads dividing H),
// row_offsets int32 [B, H, nqb + 1] of global offsets into one int32 col_indices, per key block
// the number of leading keys that exist (kv_block_valid, optional); query rows that see no key
// give zeros and LSE -inf. Computed in float32.
#pragma once

#include <cstdint>
#include <optional>
#include <tuple>

#include <ATen/core/Tensor.h>

namespace sparseplan {

// Returns (out [B, N, H, D] in q's dtype, lse float32 [B, H, N], natural log). Query blocks
// that share a count of key blocks are batched into one matmul; max_elements bounds the
// gathered keys of one batch (elements, 0: about 16 Mi). Throws std::invalid_argument on
// mismatched shapes, dtypes or out-of-range column indices.
std::tuple<at::Tensor, at::Tensor> block_sparse_attention_torch(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& row_offsets,
    const at::Tensor& col_indices, int64_t block_q, int64_t block_k,
    const std::optional<at::Tensor>& kv_block_valid, std::optional<double> scale = std::nullopt,
    int64_t max_elements = 0);

// Whether run_block_sparse_attention takes the CUDA kernels for these inputs: CUDA tensors,
// block sizes 64 or 128, head_dim 64 or 128, the kernels built.
bool block_sparse_kernel_runs(const at::Tensor& q, int64_t block_q, int64_t block_k);

// The fastest path for q's device: the CUDA kernels (sparseplan_ops) for CUDA tensors with
// block sizes they run (float32 inputs go through bfloat16), block_sparse_attention_torch
// otherwise. Same contract; out is in q's dtype.
std::tuple<at::Tensor, at::Tensor> run_block_sparse_attention(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& row_offsets,
    const at::Tensor& col_indices, int64_t block_q, int64_t block_k,
    const std::optional<at::Tensor>& kv_block_valid, std::optional<double> scale = std::nullopt,
    const std::optional<at::Tensor>& q_pair_order = std::nullopt);

}  // namespace sparseplan
