// Dense and block-sparse attention forward kernels: a query tile per work item, the shared
// main loop over key chunks, and the epilogue. Dense launches one CTA per (query tile,
// head, batch); block-sparse runs a persistent grid over the sorted work list.
#pragma once

#include <cstdint>

#include "kernels/attention_params.h"
#include "kernels/flash_epilogue.cuh"
#include "kernels/flash_mainloop.cuh"
#include "kernels/tile_scheduler.cuh"

namespace sparseplan::cuda {

template <typename Traits, typename Chunks>
__device__ __forceinline__ void attention_tile(uint8_t* smem, const AttentionParams& p, int b,
                                               int h, int q_tile, const Chunks& chunks) {
  using Element = typename Traits::Element;
  const int kvh = h / (p.heads / p.kv_heads);
  const int q0 = q_tile * Traits::kBlockM;
  const int q_valid = min(Traits::kBlockM, p.q_len - q0);
  const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                     h * p.q_head_stride + int64_t(q0) * p.q_row_stride;
  const Element* k = static_cast<const Element*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride;
  const Element* v = static_cast<const Element*>(p.v) + b * p.v_batch_stride + kvh * p.v_head_stride;
  Element* out = static_cast<Element*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride +
                 int64_t(q0) * p.o_row_stride;
  float* lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len + q0;
  constexpr float kLog2e = 1.4426950408889634f;
  AttentionState<Traits> st;
  attention_mainloop<Traits>(smem, q, p.q_row_stride, q_valid, k, p.k_row_stride, v,
                             p.v_row_stride, chunks, p.scale * kLog2e, st);
  attention_epilogue<Traits>(smem, st, out, p.o_row_stride, lse, q_valid);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 2) dense_attention_kernel(AttentionParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  const DenseChunks<Traits::kBlockN> chunks{p.kv_len, p.block_k, p.kv_block_valid};
  attention_tile<Traits>(smem, p, blockIdx.z, blockIdx.y, blockIdx.x, chunks);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 2)
    block_sparse_attention_kernel(AttentionParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ int s_item;
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  for (;;) {
    const int item = next_work(p.work_counter, p.work_list, p.num_work, &s_item);
    if (item < 0) break;
    const WorkItem w = decode_work(item, nqb);
    const int32_t* offsets = p.row_offsets + int64_t(w.bh) * (nqb + 1);
    const int begin = __ldg(offsets + w.qb);
    const CsrChunks<Traits::kBlockN> chunks{p.col_indices + begin,
                                            __ldg(offsets + w.qb + 1) - begin,
                                            p.block_k / Traits::kBlockN, p.block_k, p.kv_len,
                           (p.kv_len + p.block_k - 1) / p.block_k, p.kv_block_valid};
    attention_tile<Traits>(smem, p, w.bh / p.heads, w.bh % p.heads, w.qb, chunks);
    __syncthreads();
  }
}

}  // namespace sparseplan::cuda
