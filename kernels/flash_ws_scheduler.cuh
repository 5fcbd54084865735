// Which query tiles a persistent CTA of the warp-specialized kernel runs, and the key chunks of
// each. The producer warp and the consumer warpgroups walk the same static sequence (items
// blockIdx.x, blockIdx.x + gridDim.x, ...), so they agree without talking. Block-sparse items
// come from the work list sorted heaviest row first (tile_scheduler.cuh), which makes the
// round-robin deal close to balanced; dense items are head-major so concurrent CTAs share K/V
// in L2.
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

// The chunks of a paired tile, in key order, each one key block or (chunks of 128 keys over
// 64-key blocks) two consecutive ones whose first is whole; valid counts the chunk's leading
// real keys.
struct PairChunks {
  const int32_t* codes;  // this tile's chunks, encode_pair_chunk
  int n;
  int block_k;
  int kv_len;
  const int32_t* kv_block_valid;
  __device__ int count() const { return n; }
  __device__ int32_t code(int t) const { return __ldg(codes + t); }
  // The keys [*from, *to) of a chunk (code, `valid` leading real keys) that query block g of
  // the pair attends: all, none, or (a chunk of two blocks) one block's.
  __device__ void attended(int32_t code, int g, int valid, int* from, int* to) const {
    const bool first = (pair_chunk_members(code) >> g) & 1;
    *from = 0;
    *to = first ? valid : 0;
    const int second_members = pair_chunk_second_members(code);
    if (second_members != 0 && !((second_members >> g) & 1)) *to = first ? block_k : 0;
    if (second_members != 0 && !first && ((second_members >> g) & 1)) {
      *from = block_k;
      *to = valid;
    }
  }
  __device__ int block_valid(int kb) const {
    int valid = min(block_k, kv_len - kb * block_k);
    if (kv_block_valid != nullptr) valid = min(valid, __ldg(kv_block_valid + kb));
    return max(valid, 0);
  }
  __device__ KeyChunk operator()(int t) const {
    const int32_t c = code(t);
    const int kb = pair_chunk_block(c);
    const int valid = pair_chunk_second_members(c) ? block_k + block_valid(kb + 1) : block_valid(kb);
    return {kb * block_k, valid};
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
      return PairChunks{p.pair_chunks + begin, __ldg(p.pair_count + t.item),
                        p.block_k, p.kv_len, p.kv_block_valid};
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
