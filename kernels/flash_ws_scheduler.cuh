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
};

template <typename Traits, bool kSparse>
struct WsSchedule {
  const AttentionParams& p;

  __device__ int q_tiles() const { return (p.q_len + Traits::kBlockM - 1) / Traits::kBlockM; }
  __device__ int num_items() const {
    return kSparse ? p.num_work : p.batch * p.heads * q_tiles();
  }
  __device__ WsTile tile(int i) const {
    const int nqt = q_tiles();
    const WorkItem w = decode_work(kSparse ? __ldg(p.work_list + i) : i, nqt);
    return {w.bh / p.heads, w.bh % p.heads, w.qb};
  }
  __device__ auto chunks(const WsTile& t) const {
    if constexpr (kSparse) {
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
