// Producer warp of the warp-specialized attention kernel: for each tile, Q into the Q ring,
// then every key chunk's K and V into the K/V ring. Whole chunks go by TMA (rows past the
// sequence end arrive as zeros). A chunk whose key block is padded inside the sequence
// (kv_block_valid) or names a bad block goes by cp.async with zero-fill instead, so masked
// keys hold zeros and P x V never meets the caller's padding values (which may be NaN).
#pragma once

#include <cstdint>

#include "kernels/flash_ws_scheduler.cuh"
#include "kernels/mma_sm80.cuh"
#include "kernels/sm90_sync.cuh"
#include "kernels/wgmma_sm90.cuh"

namespace sparseplan::cuda {

// The 32 lanes copy the first `valid` rows of a [kBlockN x kHeadDim] tile and zero the rest,
// then one lane arrives on `full`.
template <typename Traits>
__device__ __forceinline__ void load_chunk_zero_filled(uint32_t smem, const typename Traits::Element* src,
                                                       int64_t row_stride, int valid, uint64_t* full) {
  constexpr int kChunksPerRow = Traits::kHeadDim / 8;
  const int lane = threadIdx.x % 32;
  for (int idx = lane; idx < Traits::kBlockN * kChunksPerRow; idx += 32) {
    const int row = idx / kChunksPerRow, chunk = idx % kChunksPerRow;
    const bool ok = row < valid;
    sm80::cp_async_16(smem + Traits::template sw128<Traits::kBlockN>(row, chunk),
                      src + (ok ? row * row_stride + chunk * 8 : 0), ok);
  }
  sm80::cp_async_commit();
  sm80::cp_async_wait<0>();
  sm90::fence_proxy_async();  // the consumers read through wgmma (the async proxy)
  __syncwarp();
  if (lane == 0) sm90::mbarrier_arrive(full);
}

template <typename Traits>
__device__ __forceinline__ void load_tile_tma(uint32_t smem, const CUtensorMap* map, uint64_t* full,
                                              int bytes, int rows, int row0, int h, int b) {
  sm90::mbarrier_arrive_expect_tx(full, bytes);
#pragma unroll
  for (int c = 0; c < Traits::kHeadDim / 64; ++c)
    sm90::tma_load_4d(smem + c * rows * 128, map, full, c * 64, row0, h, b);
}

// One K or V chunk into a ring stage: by TMA when the chunk is whole, else zero-filled.
template <typename Traits>
__device__ __forceinline__ void load_chunk(uint32_t smem, const CUtensorMap* map, uint64_t* full,
                                           const typename Traits::Element* base, int64_t row_stride,
                                           const KeyChunk& c, bool whole, int kvh, int b) {
  if (whole) {
    if (threadIdx.x % 32 == 0)
      load_tile_tma<Traits>(smem, map, full, Traits::kKBytes, Traits::kBlockN, c.key_start, kvh, b);
  } else {
    load_chunk_zero_filled<Traits>(smem, base + int64_t(c.key_start) * row_stride, row_stride,
                                   c.valid, full);
  }
}

// kLoadV = false feeds block mass, which needs only Q and K.
template <typename Traits, bool kSparse, bool kLoadV = true>
__device__ __forceinline__ void produce(const WsParams& wp, uint8_t* smem,
                                        WsBarriers<Traits::kStages>& bar) {
  using Element = typename Traits::Element;
  const AttentionParams& p = wp.a;
  const WsSchedule<Traits, kSparse> schedule{p};
  const bool leader = threadIdx.x % 32 == 0;
  const uint32_t s_base = sm90::smem_u32(smem);
  sm90::PipelineState<Traits::kQStages> qs;
  sm90::PipelineState<Traits::kStages> ks;
  for (int i = blockIdx.x; i < schedule.num_items(); i += gridDim.x) {
    const WsTile t = schedule.tile(i);
    const int kvh = t.h / (p.heads / p.kv_heads);
    sm90::mbarrier_wait(&bar.q_empty[qs.stage], qs.phase ^ 1);
    if (leader)
      load_tile_tma<Traits>(s_base + Traits::kQOffset + qs.stage * Traits::kQBytes, &wp.tma_q,
                            &bar.q_full[qs.stage], Traits::kQBytes, Traits::kBlockM,
                            t.q_tile * Traits::kBlockM, t.h, t.b);
    qs.advance();

    const auto chunks = schedule.chunks(t);
    const int n = chunks.count();
    const Element* k = static_cast<const Element*>(p.k) + t.b * p.k_batch_stride + kvh * p.k_head_stride;
    const Element* v = static_cast<const Element*>(p.v) + t.b * p.v_batch_stride + kvh * p.v_head_stride;
    for (int j = 0; j < n; ++j) {
      const KeyChunk c = chunks(j);
      const bool whole = c.valid == min(Traits::kBlockN, p.kv_len - c.key_start);
      const uint32_t sK = s_base + Traits::kKOffset + ks.stage * Traits::kKBytes;
      const uint32_t sV = s_base + Traits::kVOffset + ks.stage * Traits::kKBytes;
      sm90::mbarrier_wait(&bar.k_empty[ks.stage], ks.phase ^ 1);
      if (leader) bar.valid[ks.stage] = c.valid;
      __syncwarp();
      load_chunk<Traits>(sK, &wp.tma_k, &bar.k_full[ks.stage], k, p.k_row_stride, c, whole, kvh, t.b);
      if constexpr (kLoadV) {
        sm90::mbarrier_wait(&bar.v_empty[ks.stage], ks.phase ^ 1);
        load_chunk<Traits>(sV, &wp.tma_v, &bar.v_full[ks.stage], v, p.v_row_stride, c, whole, kvh, t.b);
      }
      ks.advance();
    }
  }
}

}  // namespace sparseplan::cuda
