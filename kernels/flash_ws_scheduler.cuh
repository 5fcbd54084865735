// Which query tiles a persistent CTA of the warp-specialized kernel runs (WsItems), and the
// key chunks of each (WsSchedule).
#pragma once

#include <cstdint>

#include "kernels/flash_mainloop.cuh"
#include "kernels/flash_ws_traits.cuh"
#include "kernels/sm90_sync.cuh"
#include "kernels/tile_scheduler.cuh"

namespace sparseplan::cuda {

struct WsTile {
  int b, h, q_tile;
  int item = 0;  // work item (paired tiles look up their rows by it)
};

// Query block `i` of a paired tile (the second -1 past an odd count), read at the tile's Q load
// and epilogue rather than held in registers through the key loop.
__device__ __forceinline__ int pair_query_block(const AttentionParams& p, const WsTile& t, int i) {
  return __ldg(&p.pair_rows[t.item].block[i]);
}

// The chunks of a paired tile: its union's key blocks in key order, one per stage, or with
// 64-key blocks in 128-key stages (two_per_stage) any two consecutive ones of the union (its
// split stages first, PairRows::split), the last stage of an odd union holding its block twice
// with the second copy attended by nobody.
struct PairChunks {
  // Block size, lengths and valid counts are read from the kernel's parameters where needed:
  // copies would hold registers of the producer warp, which has 40.
  const AttentionParams& p;
  const int32_t* codes;  // this tile's union, encode_pair_chunk
  int n;                 // union size
  bool two_per_stage;
  const int2* tiles;     // beside the codes in the fused order (AttentionParams::pair_tiles)
  int split;             // split stages at the start (PairRows::split)
  __device__ int count() const { return two_per_stage ? (n + 1) / 2 : n; }
  __device__ int32_t code(int t) const { return __ldg(codes + t); }
  // Which query blocks attend stage t's keys: bits 0-1 its first block's members, bits 2-3
  // the second block's.
  __device__ int members(int t) const {
    if (!two_per_stage) return pair_chunk_members(code(t));
    const int one = pair_chunk_members(code(2 * t));
    return 2 * t + 1 < n ? one | pair_chunk_members(code(2 * t + 1)) << 2 : one;
  }
  __device__ int block_valid(int kb) const {
    return key_block_valid(kb, p.block_k, p.kv_len, p.kv_block_valid);
  }
  __device__ KeyChunk operator()(int t) const {
    const int one = pair_chunk_block(code(two_per_stage ? 2 * t : t));
    KeyChunk c{one * p.block_k, block_valid(one)};
    if (two_per_stage) {
      const int second = 2 * t + 1 < n ? pair_chunk_block(code(2 * t + 1)) : one;
      c.second_start = second * p.block_k;
      c.second_valid = block_valid(second);
    }
    return c;
  }
  // Stage t in the fused tile order from its tiles alone (no code read first): the stage's
  // tiles into `blocks`, and each block's valid keys, its tile's tokens.
  __device__ KeyChunk video_chunk(int t, const VideoTiles& g, VideoBlocks& blocks) const {
    const int i = two_per_stage ? 2 * t : t;
    blocks.count = two_per_stage ? 2 : 1;
    blocks.tile[0] = __ldg(tiles + i);
    blocks.tile[1] = two_per_stage ? __ldg(tiles + min(i + 1, n - 1)) : int2{0, 0};
    KeyChunk c{0, unpack_tile(g, blocks.tile[0]).tokens()};
    if (two_per_stage) c.second_valid = unpack_tile(g, blocks.tile[1]).tokens();
    return c;
  }
};

// The work items a persistent CTA runs, in order. Dense tiles all cost the same: every walker
// of the CTA computes the round-robin deal (blockIdx.x, + gridDim.x, ...) alone, and CTAs
// running at once share a head's K/V. Block-sparse tiles do not, and any static deal of the
// work list lost: in head-major order some CTAs were dealt more heavy rows than others,
// sorted by weight the CTAs running at once read different heads' K/V ("Work order" in
// bench/RESULTS.md). So block-sparse CTAs draw: producer warp 0 takes the next item from the
// work counter as it starts a tile and hands it to the CTA's other walkers (every consumer
// warp, and producer warp 1 where it walks) through a ring in shared memory; whichever CTA
// is free first takes the next item, and the list's order is left to locality. Without a
// counter (SPARSEPLAN_WORK_DRAW=0, to time the two) block-sparse CTAs take the deal too.
template <typename Traits, bool kDrawn>
struct WsItems {
  const AttentionParams& p;
  WsBarriers<Traits>& bar;
  int count;  // work items
  int dealt = blockIdx.x;
  sm90::PipelineState<Traits::kItemStages> ring;

  // The walkers that take each drawn item: one arrival per consumer warp, and producer warp 1.
  __device__ static int takers(bool second_producer_walks) {
    return Traits::kConsumers * 4 + (second_producer_walks ? 1 : 0);
  }
  // Producer warp 0, all lanes: its next item, -1 past the last.
  __device__ int draw() {
    if (!kDrawn || p.work_counter == nullptr) return deal();
    sm90::mbarrier_wait(&bar.item_empty[ring.stage], ring.phase ^ 1);
    int item = 0;
    if (threadIdx.x % 32 == 0) {
      item = atomicAdd(p.work_counter, 1);
      if (item >= count) item = -1;
      atomicExch(&bar.item[ring.stage], item);
      sm90::mbarrier_arrive(&bar.item_full[ring.stage]);
    }
    ring.advance();
    return __shfl_sync(0xffffffffu, item, 0);
  }
  // Any other walking warp, all lanes: the item warp 0 drew, in the same order.
  __device__ int take() {
    if (!kDrawn || p.work_counter == nullptr) return deal();
    sm90::mbarrier_wait(&bar.item_full[ring.stage], ring.phase);
    int item = 0;
    if (threadIdx.x % 32 == 0) {
      item = atomicAdd(&bar.item[ring.stage], 0);
      sm90::mbarrier_arrive(&bar.item_empty[ring.stage]);
    }
    ring.advance();
    return __shfl_sync(0xffffffffu, item, 0);
  }
  __device__ int deal() {
    const int item = dealt;
    dealt += gridDim.x;
    return item < count ? item : -1;
  }
};

// The chunks of a query tile's CSR row in the fused tile order (one key block a chunk), read
// from the key tiles beside its columns (AttentionParams::col_tiles): the producer's walk of
// the runner's calls loads a stage's tile without first reading its column (a tile lookup
// waiting on a column load was the critical path of the paired kernels, PairChunks::tiles).
struct VideoCsrChunks {
  const int2* tiles;  // this row's
  int nnz;
  __device__ int count() const { return nnz; }
  // Chunk t's tile into `blocks`, and its valid keys, the tile's tokens (none where flagged).
  __device__ KeyChunk video_chunk(int t, const VideoTiles& g, VideoBlocks& blocks) const {
    int2 tile = __ldg(tiles + t);
    const bool none = (tile.y & kNoKeys) != 0;
    tile.y &= ~kNoKeys;
    blocks.count = 1;
    blocks.tile[0] = tile;
    blocks.tile[1] = int2{0, 0};
    return KeyChunk{0, none ? 0 : unpack_tile(g, tile).tokens()};
  }
};

// kPaired: block-sparse with 64-row query blocks, two per 128-row tile (kBlockM == 128).
// kFused: in the fused tile order (its unpaired rows come as VideoCsrChunks).
template <typename Traits, bool kSparse, bool kPaired = false, bool kFused = false>
struct WsSchedule {
  static_assert(!kPaired || (kSparse && Traits::kBlockM == 128), "pairs are block-sparse tiles of 128 rows");
  const AttentionParams& p;

  __device__ int q_tiles() const { return (p.q_len + Traits::kBlockM - 1) / Traits::kBlockM; }
  __device__ int num_items() const {
    return kSparse ? p.num_work : p.batch * p.heads * q_tiles();
  }
  __device__ WsTile tile(int i) const {
    const int nqt = q_tiles();
    const int item = kSparse ? __ldg(p.work_list + i) : i;
    const WorkItem w = decode_work(item, nqt);
    return {w.bh / p.heads, w.bh % p.heads, w.qb, item};
  }
  __device__ auto chunks(const WsTile& t) const {
    if constexpr (kPaired) {
      const PairRows* r = p.pair_rows + t.item;
      const int first = __ldg(&r->first);
      return PairChunks{p, p.pair_chunks + first, __ldg(&r->count),
                        2 * p.block_k == Traits::kBlockN,
                        p.pair_tiles ? reinterpret_cast<const int2*>(p.pair_tiles) + first
                                     : nullptr,
                        __ldg(&r->split)};
    } else if constexpr (kFused) {
      const int32_t* offsets =
          p.row_offsets + (int64_t(t.b) * p.heads + t.h) * (q_tiles() + 1) + t.q_tile;
      const int begin = __ldg(offsets);
      return VideoCsrChunks{reinterpret_cast<const int2*>(p.col_tiles) + begin,
                            __ldg(offsets + 1) - begin};
    } else if constexpr (kSparse) {
      const int nqb = q_tiles();
      const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
      const int32_t* offsets = p.row_offsets + (int64_t(t.b) * p.heads + t.h) * (nqb + 1);
      const int begin = __ldg(offsets + t.q_tile);
      return CsrChunks<Traits::kBlockN>{p.col_indices + begin,
                                        __ldg(offsets + t.q_tile + 1) - begin,
                                        p.block_k / Traits::kBlockN,
                                        p.block_k,
                                        p.kv_len,
                                        nkb,
                                        p.kv_block_valid};
    } else {
      return DenseChunks<Traits::kBlockN>{p.kv_len, p.block_k, p.kv_block_valid};
    }
  }
};

}  // namespace sparseplan::cuda
