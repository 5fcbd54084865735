// Arguments of the CUDA attention kernels: raw device pointers and element strides, shared by
// the host API (attention_api.cu) and the device code. Tensors are addressed as
// [batch, token, head, dim] through strides, so both [B, N, H, D] and [B, H, N, D] work; the
// last dimension must be contiguous.
#pragma once

#include <cstdint>

namespace sparseplan::cuda {

enum class DType { BF16, FP16 };

// A video's token grid and the 3D tiles that make its blocks, for block-sparse attention with
// the reordering into tiles fused into the kernel's loads and stores (frames > 0). Then q, k,
// v, out and lse are in the model's frame-major token order (q_len = kv_len = frames * height *
// width), and query and key block i is tile i in (f, h, w) tile order holding its tokens in
// (f, h, w) order, edge tiles fewer: the tile order of plan/tile_geometry.h with one block per
// tile and no text, which the runner otherwise gathers into and scatters back from.
// tile_major: q, k, v, out and lse hold the same tiles one after another instead, each tile's
// tokens in (f, h, w) order and no padding (the order a runner can keep its whole token stream
// in, so that no call reorders): a tile is then a run of consecutive rows.
struct VideoTiles {
  int frames = 0, height = 0, width = 0;
  int tile_f = 1, tile_h = 1, tile_w = 1;
  bool tile_major = false;
};

// A pair of 64-row query blocks (AttentionParams::pair_rows): blocks block[0] and block[1]
// (-1: none, past an odd count), and the `count` codes of their union at pair_chunks + first.
// For the rounds kernel (pair_rounds.h): each warpgroup's rounds, whether they are its own
// (else shared), and where they start in pair_rounds (warpgroup g's round r is entry
// steps + 2 r + g, an entry two ints). For the stage kernel with two 64-key blocks a stage:
// `split`, how many stages at the start of the union are split (each warpgroup computes only
// the stage's block its query block lists, warpgroup g the g-th; see consume).
struct PairRows {
  int32_t block[2];
  int32_t first, count;
  int32_t rounds[2];
  int32_t own, steps;
  int32_t split;
};

struct AttentionParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // [batch, heads, q_len], natural log

  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;

  int batch = 0, heads = 0, kv_heads = 0;  // kv_heads divides heads (grouped-query attention)
  int q_len = 0, kv_len = 0, head_dim = 0;
  float scale = 0.0f;  // softmax scale, usually 1/sqrt(head_dim)

  // Block sparsity. row_offsets is [batch, heads, num_q_blocks + 1] holding offsets into one
  // col_indices array for all heads (each head's rows follow the previous head's), so every
  // head's slice is a CSR after subtracting its first entry. Null row_offsets = dense.
  int block_q = 128;
  int block_k = 128;
  const int32_t* row_offsets = nullptr;
  const int32_t* col_indices = nullptr;
  // Length of col_indices, -1 where unknown. With block_q 64 on Hopper, two consecutive query
  // blocks share one 128-row tile over the union of their key blocks, which is written into a
  // workspace copy of col_indices (see block_sparse_workspace_bytes); unknown runs them apart.
  int64_t num_cols = -1;
  // [num_k_blocks], may be null: leading valid keys of each key block (padding masked).
  const int32_t* kv_block_valid = nullptr;

  // Persistent scheduling for block-sparse launches: work items (b * heads + h) * nqb + qb in
  // the order to run them (head-major; attention_sparse.cu, work_buckets), and a zeroed counter
  // the CTAs draw them from (flash_ws_scheduler.cuh, WsItems).
  const int32_t* work_list = nullptr;
  int32_t* work_counter = nullptr;
  int num_work = 0;

  // With block_q 64 on Hopper, which query blocks share a tile: [batch, heads, nqb], may be
  // null. Each (batch, head)'s entries, if a permutation of its query blocks, pair blocks
  // order[2 i] and order[2 i + 1] (plan/query_pairs.h chooses pairs whose key blocks overlap
  // most); null, or a head's entries that are not a permutation, pair blocks 2 i and 2 i + 1.
  // A hint only: every pairing gives the same result.
  const int32_t* q_pair_order = nullptr;

  // Paired 64-row query blocks (filled in by block_sparse_attention_forward): work items are
  // (b * heads + h) * ceil(nqb / 2) + pair; pair_rows[item] says which query blocks the pair
  // serves and where the codes (encode_pair_chunk) of the union of their key blocks lie in
  // pair_chunks.
  const PairRows* pair_rows = nullptr;
  const int32_t* pair_chunks = nullptr;
  // In the fused tile order, beside each chunk code its key block's tile (two ints, pack_tile),
  // so the producer reads a stage's tiles without first reading its codes.
  const int32_t* pair_tiles = nullptr;
  // The rounds kernel's rounds, num_cols + 2 x pairs entries of two ints: encode_round and
  // encode_round_valid.
  const int32_t* pair_rounds = nullptr;

  // Fused tile order (see VideoTiles); kv_block_valid must then be null (the tiles say it), and
  // num_cols set.
  VideoTiles video;
  // Set by the launcher for the fused order: per tile two ints (pack_tile, video_tiles.cuh),
  // and beside each col_indices entry its key block's tile (kNoKeys: out of range), so the
  // producer reads a stage's tile without first reading its column.
  const int32_t* video_spans = nullptr;
  const int32_t* col_tiles = nullptr;
};

// Exact block attention mass from a cached LSE (see ref::block_mass).
struct BlockMassParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const float* lse = nullptr;  // [batch, heads, q_len]
  float* mass = nullptr;       // [batch, heads, nqb, nkb]
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int batch = 0, heads = 0, kv_heads = 0;
  int q_len = 0, kv_len = 0, head_dim = 0;
  float scale = 0.0f;
  int block_q = 128;
  int block_k = 128;
  const int32_t* q_block_valid = nullptr;   // [nqb], may be null
  const int32_t* kv_block_valid = nullptr;  // [nkb], may be null
};

}  // namespace sparseplan::cuda
