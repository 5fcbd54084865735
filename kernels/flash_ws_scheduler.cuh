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
  int item = 0;  // work item (paired tiles look up their chunk count by it)
};

// The chunks of a paired tile: its union's key blocks in key order, one per stage, or with
// 64-key blocks in 128-key stages (two_per_stage) any two consecutive ones of the union, the
// last stage of an odd union holding its block twice with the second copy attended by nobody.
struct PairChunks {
  const int32_t* codes;  // this tile's union, encode_pair_chunk
  int n;                 // union size
  int block_k;
  int kv_len;
  const int32_t* kv_block_valid;
  bool two_per_stage;
  __device__ int count() const { return two_per_stage ? (n + 1) / 2 : n; }
  // Which query blocks attend stage t's keys: bits 0-1 its first block's members, bits 2-3
  // the second block's.
  __device__ int members(int t) const {
    if (!two_per_stage) return pair_chunk_members(__ldg(codes + t));
    const int first = pair_chunk_members(__ldg(codes + 2 * t));
    return 2 * t + 1 < n ? first | pair_chunk_members(__ldg(codes + 2 * t + 1)) << 2 : first;
  }
  __device__ int block_valid(int kb) const {
    int valid = min(block_k, kv_len - kb * block_k);
    if (kv_block_valid != nullptr) valid = min(valid, __ldg(kv_block_valid + kb));
    return max(valid, 0);
  }
  __device__ KeyChunk operator()(int t) const {
    const int first = pair_chunk_block(__ldg(codes + (two_per_stage ? 2 * t : t)));
    KeyChunk c{first * block_k, block_valid(first)};
    if (two_per_stage) {
      const int second = 2 * t + 1 < n ? pair_chunk_block(__ldg(codes + 2 * t + 1)) : first;
      c.second_start = second * block_k;
      c.second_valid = block_valid(second);
    }
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
      const int nqb = (p.q_len + 63) / 64;
      const int begin =
          __ldg(p.row_offsets + (int64_t(t.b) * p.heads + t.h) * (nqb + 1) + 2 * t.q_tile);
      return PairChunks{p.pair_chunks + begin, __ldg(p.pair_count + t.item), p.block_k,
                        p.kv_len,  p.kv_block_valid, 2 * p.block_k == Traits::kBlockN};
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
