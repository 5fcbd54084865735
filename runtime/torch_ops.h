// Torch ops over the kernels, registered as torch.ops.sparseplan.* (library sparseplan_ops):
// a CPU implementation through the float32 references and a CUDA one through the kernels.
// q, k, v are [B, N, H, D] (model layout; any strides with a contiguous last dim), LSE is
// float32 [B, H, N] in natural log. Layouts are row_offsets int32 [B, H, nqb + 1] (offsets into
// one col_indices array for all heads, each head after the previous one) and col_indices int32.
// Calling these functions directly goes through the dispatcher (CPU or CUDA by device).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace sparseplan::ops {

// Returns (out [B, N, H, D] in q's dtype, lse [B, H, N]).
std::tuple<at::Tensor, at::Tensor> dense_attention(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& v, c10::optional<double> scale);

std::tuple<at::Tensor, at::Tensor> block_sparse_attention(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& row_offsets,
    const at::Tensor& col_indices, int64_t block_q, int64_t block_k,
    const c10::optional<at::Tensor>& kv_block_valid, c10::optional<double> scale,
    const c10::optional<at::Tensor>& q_pair_order = c10::nullopt);

// q_pair_order (both block-sparse ops), int32 [B, H, nqb]: with 64-token query blocks on
// Hopper, which blocks share a 128-row tile (cuda::AttentionParams::q_pair_order,
// plan/query_pairs.h); a scheduling hint, the result is the same without it.

// The fused tile order: q, k, v hold a video's frame-major tokens (N = frames * height *
// width, grid = [frames, height, width]); query and key block i of the layout is tile i of
// `tile` in (f, h, w) order, the tile fitting one block of `block` tokens (plan/tile_geometry.h
// with one block per tile and no text). Returns (out, lse) in model order, as if the tokens
// were gathered into tile order, attended and scattered back; on Hopper the kernels read and
// write model order directly. tile_major: q, k, v, out and lse hold the tiles' tokens one tile
// after another with no padding instead (tile_major_tokens, plan/tile_geometry.h), which the
// kernels read and write with no reorder at all.
std::tuple<at::Tensor, at::Tensor> video_block_sparse_attention(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& row_offsets,
    const at::Tensor& col_indices, c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block,
    bool tile_major, c10::optional<double> scale,
    const c10::optional<at::Tensor>& q_pair_order = c10::nullopt);
// mass float32 [B, H, nqb, nkb].
at::Tensor block_mass(const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse,
                      int64_t block_q, int64_t block_k,
                      const c10::optional<at::Tensor>& q_block_valid,
                      const c10::optional<at::Tensor>& kv_block_valid,
                      c10::optional<double> scale);

// Returns (row_offsets [B, H, nqb + 1], col_indices). On CUDA col_indices may be longer than
// row_offsets[-1, -1, -1] (capacity; entries past it are unused).
std::tuple<at::Tensor, at::Tensor> select_blocks(const at::Tensor& mass, double mass_target,
                                                 int64_t top_k, int64_t min_blocks,
                                                 int64_t max_blocks,
                                                 const c10::optional<at::Tensor>& forced);

// out[:, i] = x[:, index[i]] or zeros where index[i] < 0; x is [B, N_src, ...] contiguous.
at::Tensor reorder_tokens(const at::Tensor& x, const at::Tensor& index);

}  // namespace sparseplan::ops
