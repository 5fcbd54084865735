// Block mass on Hopper: the block_mass_kernel algorithm with S = Q K^T on wgmma (Q and K from
// 128-byte-swizzled shared memory, cp.async double-buffered K). One chunk is one key block.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/attention_params.h"
#include "kernels/flash_sm90.cuh"

namespace sparseplan::cuda {

// Two CTAs per SM (no P x V, so the registers fit): one CTA's exponentials overlap the other's
// wgmma, which a single lockstep CTA cannot do.
template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 2) block_mass_sm90_kernel(BlockMassParams p) {
  using Element = typename Traits::Element;
  using MmaS = sm90::Wgmma<Element, Traits::kBlockN>;
  constexpr int kD = Traits::kHeadDim, kN = Traits::kBlockN;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  constexpr float kLog2e = 1.4426950408889634f;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int group = threadIdx.x / 128;
  const int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (p.heads / p.kv_heads);
  const int q0 = qb * Traits::kBlockM;
  int q_valid = min(Traits::kBlockM, p.q_len - q0);
  if (p.q_block_valid != nullptr) q_valid = min(q_valid, p.q_block_valid[qb]);
  const float* lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len + q0;
  static_assert(Traits::kBlockM <= Traits::kThreads, "one thread per query row");
  const int rows =
      __syncthreads_count(int(threadIdx.x) < q_valid && lse[threadIdx.x] != -INFINITY);
  if (rows == 0) return;  // mass stays 0 (zeroed by the launcher)
  const float inv_rows = 1.0f / float(rows);

  float row_lse2[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + (lane >> 2) + r * 8;
    const float l = row < q_valid ? lse[row] : -INFINITY;
    row_lse2[r] = l == -INFINITY ? INFINITY : l * kLog2e;
  }

  const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                     h * p.q_head_stride + int64_t(q0) * p.q_row_stride;
  const Element* k = static_cast<const Element*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  float* mass = p.mass + ((int64_t(b) * p.heads + h) * gridDim.x + qb) * nkb;
  const DenseChunks<kN> chunks{p.kv_len, p.block_k, p.kv_block_valid};
  const int n = chunks.count();
  const float scale_log2 = p.scale * kLog2e;

  const uint32_t sQ = sm80::smem_addr(smem);
  const uint32_t sK0 = sQ + Traits::kQBytes;
  const uint32_t sQg = sQ + group * 64 * 128;
  load_tile_sw128<Traits, Traits::kBlockM, kD>(sQ, q, p.q_row_stride, q_valid);
  KeyChunk cur = chunks(0);
  load_tile_sw128<Traits, kN, kD>(sK0, k + int64_t(cur.key_start) * p.k_row_stride,
                                  p.k_row_stride, cur.valid);
  sm80::cp_async_commit();
  for (int t = 0; t < n; ++t) {
    const int stage = t & 1;
    const uint32_t sK = sK0 + stage * Traits::kKBytes;
    sm80::cp_async_wait<0>();
    sm90::fence_proxy_async();
    __syncthreads();
    KeyChunk next{0, 0};
    if (t + 1 < n) {
      next = chunks(t + 1);
      load_tile_sw128<Traits, kN, kD>(sK0 + (stage ^ 1) * Traits::kKBytes,
                                      k + int64_t(next.key_start) * p.k_row_stride,
                                      p.k_row_stride, next.valid);
    }
    sm80::cp_async_commit();
    float S[1][Traits::kNTiles][4];
    float(&s)[kN / 2] = reinterpret_cast<float(&)[kN / 2]>(S);
    sm90::fence();
    MmaS::ss0(s, sm90::smem_desc(sQg), sm90::smem_desc(sK));
#pragma unroll
    for (int kk = 1; kk < kD / 16; ++kk) {
      const uint32_t col = kk >> 2, in_atom = (kk & 3) * 32;
      MmaS::ss(s, sm90::smem_desc(sQg + col * Traits::kBlockM * 128 + in_atom),
               sm90::smem_desc(sK + col * kN * 128 + in_atom), 1);
    }
    sm90::commit();
    sm90::wait<0>();
    sm90::fence_operand(s);
    if (cur.valid < kN) mask_scores<Traits>(S, cur.valid, lane);
    float sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) sum += exp2f(fmaf(S[0][nt][i], scale_log2, -row_lse2[i >> 1]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0 && sum != 0.0f) atomicAdd(mass + cur.key_start / p.block_k, sum * inv_rows);
    cur = next;
  }
}

}  // namespace sparseplan::cuda
