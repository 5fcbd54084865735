// Host entry points of the CUDA kernels: raw device pointers and a stream, no LibTorch. Each
// checks its arguments (std::invalid_argument naming the argument), dispatches on dtype
// (bf16, fp16) and head_dim (64, 128), launches asynchronously on `stream`, and throws
// std::runtime_error on a launch error. Only declared when built with CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/attention_params.h"
#include "kernels/block_select_reference.h"

#ifdef SPARSEPLAN_WITH_CUDA
#include <cuda_runtime_api.h>

namespace sparseplan::cuda {

// Dense attention forward: p.out and p.lse over all keys (p.row_offsets must be null).
// p.kv_block_valid (with p.block_k) optionally masks padded keys. On Hopper the wgmma path
// runs (SPARSEPLAN_FORCE_SM80=1 selects the mma.sync one, for tests and comparisons).
void dense_attention_forward(const AttentionParams& p, DType dtype, cudaStream_t stream);

// Bytes of device scratch block_sparse_attention_forward needs (work list and its sort).
size_t block_sparse_workspace_bytes(const AttentionParams& p);

// Block-sparse attention forward over p.row_offsets / p.col_indices (see AttentionParams).
// block_q and block_k are 64 or 128. Sorts the work items by row nnz in `workspace` (of
// block_sparse_workspace_bytes), then runs a persistent grid. p.work_list / p.work_counter
// are filled in from the workspace. On Hopper with block_q 64 and p.num_cols set, two query
// blocks share a 128-row tile over the union of their key blocks (both consumer warpgroups
// busy, as with 128-row blocks; with 64-key blocks a warpgroup computes alone a key block only
// its query block lists; SPARSEPLAN_PAIR64 picks the mode, 0 turns pairing off, 3 and 4 run
// the rounds kernel, see attention_api.cu): consecutive ones, or those p.q_pair_order pairs.
// With p.video set (VideoTiles) q, k, v, out and lse are in the model's token order and
// the kernels read and write them there, each block one tile (no gather or scatter pass);
// Hopper only.
void block_sparse_attention_forward(AttentionParams p, DType dtype, void* workspace,
                                    cudaStream_t stream);

// Whether the current device runs the fused tile order (p.video): Hopper, sm_90 kernels not
// turned off by SPARSEPLAN_FORCE_SM80.
bool fused_tile_order_supported();

// Block mass [batch, heads, nqb, nkb] from the cached LSE of full attention.
void block_mass_forward(const BlockMassParams& p, DType dtype, cudaStream_t stream);

// Online selection over mass [rows = batch * heads * nqb, nkb] (float32, contiguous):
// writes row_offsets [batch, heads, nqb + 1] (offsets into one col_indices array, as
// AttentionParams wants) and col_indices (capacity >= rows * nkb, or rows * max(max_blocks,
// forced count)). forced [nkb] may be null. Same result as ref::select_blocks.
size_t block_select_workspace_bytes(int64_t rows, int num_k_blocks);
void block_select(const ref::SelectionRule& rule, const float* mass, int batch_heads,
                  int num_q_blocks, int num_k_blocks, const uint8_t* forced, int32_t* row_offsets,
                  int32_t* col_indices, void* workspace, cudaStream_t stream);

// Token reordering as a row gather: dst[b, i, :] = src[b, index[i], :] or zeros where
// index[i] < 0. Rows are row_bytes long (a multiple of 16), batch strides in bytes.
// Model order -> tile order: index = token_of_slot; tile -> model: index = slot_of_token.
void gather_rows(const void* src, int64_t src_batch_stride, int64_t src_rows, void* dst,
                 int64_t dst_batch_stride, int64_t dst_rows, int64_t row_bytes, int batch,
                 const int32_t* index, cudaStream_t stream);

}  // namespace sparseplan::cuda
#endif
