// Launchers of the warp-specialized sm_90a attention kernel. Where the TMA unit cannot address
// a tensor (the driver refuses its map), the mma.sync kernels run instead (the fused tile
// order has no such fallback: an error).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/flash_ws_kernel.cuh"
#include "kernels/flash_ws_rounds.cuh"
#include "kernels/launch.h"
#include "kernels/tma_descriptor.h"

namespace sparseplan::cuda::detail {
namespace {

// The fused tile order's rings: one V stage more than Traits. Its loads take longer to land
// (a box spans a tile's rows of several frames and lines far apart in memory): measured
// latency-bound, not bandwidth-bound, so a deeper ring hides it where shared memory allows.
template <typename Traits>
using FusedWs = WsTraits<typename Traits::Element, Traits::kHeadDim, Traits::kConsumers,
                         Traits::kBlockN, Traits::kKStages, Traits::kVStages + 1>;

// SPARSEPLAN_WORK_DRAW=0 (read at every call, so one process can time both) has block-sparse
// CTAs take the static deal instead of drawing items from the work counter (WsItems).
void deal_if_asked(WsParams* wp) {
  const char* e = std::getenv("SPARSEPLAN_WORK_DRAW");
  if (e != nullptr && std::string(e) == "0") wp->a.work_counter = nullptr;
}

// Returns false (nothing launched) when the tensors cannot be mapped for TMA.
template <typename Traits, bool kSparse>
bool launch_ws(const AttentionParams& a, cudaStream_t stream) {
  WsParams wp;
  if (!encode_ws_maps(a, Traits::kBlockM, Traits::kBlockN, true, &wp)) return false;
  deal_if_asked(&wp);
  const int q_tiles = (a.q_len + Traits::kBlockM - 1) / Traits::kBlockM;
  const int items = kSparse ? a.num_work : a.batch * a.heads * q_tiles;
  if constexpr (kSparse) {
    if (a.video.frames > 0) {
      launch_ws_kernel<FusedWs<Traits>>(flash_ws_kernel<FusedWs<Traits>, true, false, true>, wp,
                                        items, stream, "attention (sm90, fused tile order)");
      return true;
    }
  }
  launch_ws_kernel<Traits>(flash_ws_kernel<Traits, kSparse>, wp, items, stream, "attention (sm90)");
  return true;
}

// Ring depths, measured (bench/RESULTS.md). Dense, where warp 1 loads V: at head_dim 128 two Q,
// two K and three V stages of 128 keys fill shared memory (224 KB), V getting the third
// because its stage is freed a chunk later; head_dim 64 has room for four and five.
// Block-sparse, K and V of a chunk loaded in order by one warp: two and two, three and three.
template <int kHeadDim, bool kSparse>
constexpr int k_stages() {
  return kHeadDim == 128 ? 2 : (kSparse ? 3 : 4);
}
template <int kHeadDim, bool kSparse>
constexpr int v_stages() {
  return kHeadDim == 128 ? (kSparse ? 2 : 3) : (kSparse ? 3 : 5);
}
template <typename Element, int kHeadDim, int kConsumers, int kBlockN, bool kSparse>
using Ws = WsTraits<Element, kHeadDim, kConsumers, kBlockN, k_stages<kHeadDim, kSparse>(),
                    v_stages<kHeadDim, kSparse>()>;

// The fused tile order's maps (WsVideo): per edge class the grid has, q, k and v with boxes of
// that class's tile (in the tile-major order, runs of its token count).
bool encode_video_maps(const AttentionParams& a, WsVideo* v) {
  const VideoTiles& g = a.video;
  v->grid = g;
  v->tiles = reinterpret_cast<const int2*>(a.video_spans);
  const int ext[3] = {g.frames, g.height, g.width}, tile[3] = {g.tile_f, g.tile_h, g.tile_w};
  for (int edge = 0; edge < kTileEdgeClasses; ++edge) {
    int box[3];
    bool occurs = true;
    for (int d = 0; d < 3; ++d) {
      const bool partial = (edge >> (2 - d)) & 1;
      box[d] = partial ? ext[d] % tile[d] : tile[d];
      occurs = occurs && (partial ? ext[d] % tile[d] != 0 : ext[d] >= tile[d]);
    }
    if (!occurs) continue;
    // Tile-major tensors are one line of runs: a 1 x 1 x tokens grid read a run at a time.
    const int tokens = g.frames * g.height * g.width, run = box[0] * box[1] * box[2];
    const auto shape = [&](const void* base, int heads, int64_t row_stride, int64_t batch_stride) {
      if (g.tile_major)
        return VideoMapShape{base, a.batch, 1, 1, tokens, heads * a.head_dim,
                             row_stride, batch_stride, 1, 1, run};
      return VideoMapShape{base, a.batch, g.frames, g.height, g.width, heads * a.head_dim,
                           row_stride, batch_stride, box[0], box[1], box[2]};
    };
    if (!encode_video_map(&v->q[edge], shape(a.q, a.heads, a.q_row_stride, a.q_batch_stride)) ||
        !encode_video_map(&v->k[edge], shape(a.k, a.kv_heads, a.k_row_stride, a.k_batch_stride)) ||
        !encode_video_map(&v->v[edge], shape(a.v, a.kv_heads, a.v_row_stride, a.v_batch_stride)))
      return false;
  }
  return true;
}

}  // namespace

bool encode_ws_maps(const AttentionParams& a, int block_m, int block_n, bool with_v_and_o,
                    WsParams* wp) {
  wp->a = a;
  if (a.video.frames > 0) return encode_video_maps(a, &wp->video);
  const TileMapShape q{a.q, a.batch, a.q_len, a.heads, a.head_dim,
                       a.q_row_stride, a.q_head_stride, a.q_batch_stride, block_m};
  const TileMapShape k{a.k, a.batch, a.kv_len, a.kv_heads, a.head_dim,
                       a.k_row_stride, a.k_head_stride, a.k_batch_stride, block_n};
  if (!encode_tile_map(&wp->tma_q, q) || !encode_tile_map(&wp->tma_k, k)) return false;
  if (!with_v_and_o) return true;
  const TileMapShape v{a.v, a.batch, a.kv_len, a.kv_heads, a.head_dim,
                       a.v_row_stride, a.v_head_stride, a.v_batch_stride, block_n};
  const TileMapShape o{a.out, a.batch, a.q_len, a.heads, a.head_dim,
                       a.o_row_stride, a.o_head_stride, a.o_batch_stride, 64};
  return encode_tile_map(&wp->tma_v, v) && encode_tile_map(&wp->tma_o, o);
}

// 128-key chunks would straddle 64-key blocks whose padding differs.
template <typename Element, int kHeadDim>
void run_dense_sm90(const AttentionParams& p, cudaStream_t stream) {
  const bool launched = p.kv_block_valid != nullptr && p.block_k == 64
                            ? launch_ws<Ws<Element, kHeadDim, 2, 64, false>, false>(p, stream)
                            : launch_ws<Ws<Element, kHeadDim, 2, 128, false>, false>(p, stream);
  if (!launched) run_dense<Element, kHeadDim>(p, stream);
}

template <typename Element, int kHeadDim, int kConsumers>
void run_block_sparse_sm90(const AttentionParams& p, cudaStream_t stream) {
  const bool launched = p.block_k == 64
                            ? launch_ws<Ws<Element, kHeadDim, kConsumers, 64, true>, true>(p, stream)
                            : launch_ws<Ws<Element, kHeadDim, kConsumers, 128, true>, true>(p, stream);
  if (launched) return;
  if (p.video.frames > 0)
    throw std::runtime_error("block_sparse_attention: the TMA unit cannot map the video tensors "
                             "for the fused tile order");
  run_block_sparse<Element, kHeadDim, kConsumers>(p, stream);
}

// Paired 64-row query blocks: 64-key stages get twice the stages of 128-key ones, the same
// bytes in flight.
template <typename Element, int kHeadDim, int kBlockN>
using WsPairs = WsTraits<Element, kHeadDim, 2, kBlockN,
                         k_stages<kHeadDim, true>() * (128 / kBlockN),
                         v_stages<kHeadDim, true>() * (128 / kBlockN)>;

// The rounds kernel's rings of single blocks: at head_dim 128 the four K and six V blocks of
// the paired kernels' two K and three V stages (224 KB with the Q ring), at 64 eight and eight.
template <typename Element, int kHeadDim>
using WsRounds = WsRoundsTraits<Element, kHeadDim, kHeadDim == 128 ? 4 : 8,
                                kHeadDim == 128 ? 6 : 8>;

int rounds_ring_slots(int head_dim) {
  return head_dim == 128 ? WsRounds<__nv_bfloat16, 128>::kRingSlots
                         : WsRounds<__nv_bfloat16, 64>::kRingSlots;
}

namespace {

template <typename Element, int kHeadDim>
bool run_block_sparse_rounds_sm90(const AttentionParams& p, cudaStream_t stream) {
  using Traits = WsRounds<Element, kHeadDim>;
  WsParams wp;
  // Q in 64-row boxes (a pair's blocks load one by one), K and V a block a box.
  if (!encode_ws_maps(p, 64, 64, true, &wp)) return false;
  deal_if_asked(&wp);
  if (p.video.frames > 0)
    launch_ws_kernel<Traits>(flash_ws_rounds_kernel<Traits, true>, wp, p.num_work, stream,
                             "attention (sm90, rounds, fused tile order)");
  else
    launch_ws_kernel<Traits>(flash_ws_rounds_kernel<Traits, false>, wp, p.num_work, stream,
                             "attention (sm90, rounds)");
  return true;
}

}  // namespace

template <typename Element, int kHeadDim>
bool run_block_sparse_pairs_sm90(const AttentionParams& p, PairKernel kind, cudaStream_t stream) {
  if (kind == PairKernel::kRounds)
    return run_block_sparse_rounds_sm90<Element, kHeadDim>(p, stream);
  const bool two = kind == PairKernel::kTwoPerStage && p.block_k == 64;
  const auto launch = [&](auto traits) {
    using Traits = decltype(traits);
    WsParams wp;
    // Q in 64-row boxes: a pair's blocks load one by one, from wherever the pair order put them.
    if (!encode_ws_maps(p, 64, two ? 64 : Traits::kBlockN, true, &wp)) return false;
    deal_if_asked(&wp);
    if (p.video.frames > 0)
      launch_ws_kernel<FusedWs<Traits>>(flash_ws_kernel<FusedWs<Traits>, true, true, true>, wp,
                                        p.num_work, stream,
                                        "attention (sm90, paired 64-row blocks, fused tile order)");
    else
      launch_ws_kernel<Traits>(flash_ws_kernel<Traits, true, true>, wp, p.num_work, stream,
                               "attention (sm90, paired 64-row blocks)");
    return true;
  };
  return p.block_k == 64 && !two ? launch(WsPairs<Element, kHeadDim, 64>{})
                                 : launch(WsPairs<Element, kHeadDim, 128>{});
}

#define SPARSEPLAN_INSTANTIATE(E, D)                                                    \
  template void run_dense_sm90<E, D>(const AttentionParams&, cudaStream_t);             \
  template bool run_block_sparse_pairs_sm90<E, D>(const AttentionParams&, PairKernel,     \
                                                   cudaStream_t);                        \
  template void run_block_sparse_sm90<E, D, 1>(const AttentionParams&, cudaStream_t);   \
  template void run_block_sparse_sm90<E, D, 2>(const AttentionParams&, cudaStream_t);
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 64)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 128)
SPARSEPLAN_INSTANTIATE(__half, 64)
SPARSEPLAN_INSTANTIATE(__half, 128)
#undef SPARSEPLAN_INSTANTIATE

}  // namespace sparseplan::cuda::detail
