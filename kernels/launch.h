// Internal: the typed launchers that attention_api.cu dispatches to, each defined (and
// explicitly instantiated) in its own .cu file so they compile in parallel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention_params.h"
#include "kernels/block_select_reference.h"

namespace sparseplan::cuda {
struct WsParams;
}

namespace sparseplan::cuda::detail {

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Resident CTAs per SM times SMs, for persistent grids.
int persistent_grid(const void* kernel, int threads, size_t smem_bytes);

// TMA maps of the warp-specialized kernels (attention_sm90.cu): Q in boxes of block_m rows, K of
// block_n, and with_v_and_o V (block_n) and O (64); with the fused tile order (a.video) the
// video maps instead. Copies `a` into wp->a. False when the driver refuses a map (the caller
// then runs an mma.sync kernel).
bool encode_ws_maps(const AttentionParams& a, int block_m, int block_n, bool with_v_and_o,
                    WsParams* wp);

template <typename Element, int kHeadDim>
void run_dense(const AttentionParams& p, cudaStream_t stream);
template <typename Element, int kHeadDim, int kMTiles>
void run_block_sparse(const AttentionParams& p, cudaStream_t stream);
template <typename Element, int kHeadDim, int kMTiles>
void run_block_mass(const BlockMassParams& p, cudaStream_t stream);

// The fused tile order's tables (video_tiles.cuh): each tile's token count into valid[0, tiles)
// (its kv_block_valid) and pack_tile into spans[0, 2 * tiles).
void video_tile_table(const VideoTiles& grid, int tiles, int32_t* valid, int32_t* spans,
                      cudaStream_t stream);
// col_tiles[i] = spans[cols[i]] (two ints an entry), or tile 0 | kNoKeys where cols[i] is not
// in [0, tiles).
void video_column_tiles(const int32_t* cols, int64_t num_cols, int tiles, const int32_t* spans,
                        int32_t* col_tiles, cudaStream_t stream);

// Hopper (wgmma) path.
template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_mass_sm90(const BlockMassParams& p, cudaStream_t stream);
template <typename Element, int kHeadDim>
void run_dense_sm90(const AttentionParams& p, cudaStream_t stream);
template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_sparse_sm90(const AttentionParams& p, cudaStream_t stream);
// Block-sparse over pairs of 64-row query blocks (p.pair_rows, p.pair_chunks and the work
// list of build_pair_work_list): stages of one 64-key block or two of the union for both
// query blocks, or rounds (pair_rounds.h; p.pair_rounds, block_k 64). False (nothing
// launched) when the tensors cannot be mapped for TMA.
enum class PairKernel { kBlockPerStage, kTwoPerStage, kRounds };
template <typename Element, int kHeadDim>
bool run_block_sparse_pairs_sm90(const AttentionParams& p, PairKernel kind, cudaStream_t stream);
// The rounds kernel's ring of single key blocks, in blocks (the smaller of its K and V rings).
int rounds_ring_slots(int head_dim);
// True on a compute capability 9.0 device unless SPARSEPLAN_FORCE_SM80=1 asks for the mma.sync
// path (tests and benchmarks run both).
bool use_sm90_path();

// Work items (bh * nqb + qb) into work_list in head-major order, or sorted by row nnz in weight
// classes, heaviest first and stable (SPARSEPLAN_WORK_BUCKETS; attention_sparse.cu,
// work_buckets), using `scratch` of work_list_scratch_bytes.
size_t work_list_scratch_bytes(int items, int num_k_blocks);
void build_work_list(const int32_t* row_offsets, int batch_heads, int num_q_blocks,
                     int num_k_blocks, int32_t* work_list, void* scratch, cudaStream_t stream);

// Pairs of 64-row query blocks (items bh * ceil(nqb / 2) + pair) of p, which blocks each from
// p.q_pair_order where that is a permutation of the head's blocks (checked here), else 2 pair
// and 2 pair + 1: writes each pair's rows (PairRows) and chunks (the union of both rows' key
// blocks in key order, encode_pair_chunk) into pair_chunks (p.num_cols entries, over the
// head's CSR range), and sorts the items by union size as build_work_list does, into
// work_list; in the fused tile order (p.video_spans) each code's key block's tile beside it
// in pair_tiles (two ints an entry); given pair_rounds (p.num_cols + 2 x pairs entries of two
// ints), each pair's rounds for a ring of ring_slots blocks (0: shared rounds only) with their
// blocks' valid keys; with split_stages (two 64-key blocks a stage) the union leads with the
// split stages (PairRows::split). scratch holds pair_work_scratch_bytes. Pairs whose CSR rows fall
// outside [0, num_cols) or into the next head's range get no chunks. Needs num_k_blocks <=
// kMaxPairKeyBlocks (the union is formed in shared-memory bitmaps).
constexpr int kMaxPairKeyBlocks = 16384;
size_t pair_work_scratch_bytes(int items, int num_k_blocks);
void build_pair_work_list(const AttentionParams& p, int num_q_blocks, int num_k_blocks,
                          int32_t* work_list, PairRows* pair_rows, int32_t* pair_chunks,
                          int32_t* pair_tiles, int32_t* pair_rounds, int ring_slots,
                          bool split_stages, void* scratch, cudaStream_t stream);

}  // namespace sparseplan::cuda::detail
