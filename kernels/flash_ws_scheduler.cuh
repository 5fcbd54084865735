// Which query tiles a persistent CTA of the warp-specialized kernel runs, and the key chunks of
// each. The producer warp and the consumer warpgroups walk the same static sequence (items
// blockIdx.x, blockIdx.x + gridDim.x, ...), so they agree without talking. Block-sparse items
// come from the work list sorted heaviest weight class first (tile_scheduler.cuh), which makes
// the round-robin deal close to balanced; dense items are head-major so concurrent CTAs share
// K/V in L2.
#pragma once

#include <cstdint>

#include "kernels/flash_mainloop.cuh"
#include "kernels/flash_ws_traits.cuh"
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
// 64-key blocks in 128-key stages (two_per_stage) any two consecutive ones of the union, the
// last stage of an odd union holding its block twice with the second copy attended by nobody.
struct PairChunks {
  // Block size, lengths and valid counts are read from the kernel's parameters where needed:
  // copies would hold registers of the producer warp, which has 40.
  const AttentionParams& p;
  const int32_t* codes;  // this tile's union, encode_pair_chunk
  int n;                 // union size
  bool two_per_stage;
  const int2* tiles;     // beside the codes in the fused order (AttentionParams::pair_tiles)
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
    int valid = min(p.block_k, p.kv_len - kb * p.block_k);
    if (p.kv_block_valid != nullptr) valid = min(valid, __ldg(p.kv_block_valid + kb));
    return max(valid, 0);
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

// kPaired: block-sparse with 64-row query blocks, two per 128-row tile (kBlockM == 128).
template <typename Traits, bool kSparse, bool kPaired = false>
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
                                     : nullptr};
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
