// Epilogue of the attention kernels: normalizes O by the softmax sum, writes it through
// shared memory as 16-byte rows, and writes the natural-log LSE (-inf for rows with no key,
// whose output is zero).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/flash_mainloop.cuh"

namespace sparseplan::cuda {

template <typename Traits>
__device__ __forceinline__ void attention_epilogue(uint8_t* smem, AttentionState<Traits>& st,
                                                   typename Traits::Element* out,
                                                   int64_t o_row_stride, float* lse,
                                                   int q_valid) {
  using Element = typename Traits::Element;
  using Mma = sm80::Mma<Element>;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  constexpr float kLn2 = 0.69314718055994530942f;
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = st.l[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int row = (warp * Traits::kMTiles + mt) * 16 + (lane >> 2) + r * 8;
      if ((lane & 3) == 0 && row < q_valid)
        lse[row] = l > 0.0f ? st.m[mt][r] * kLn2 + logf(l) : -INFINITY;
#pragma unroll
      for (int dt = 0; dt < Traits::kDTiles; ++dt) {
        const uint32_t packed = Mma::pack(st.O[mt][dt][2 * r] * inv, st.O[mt][dt][2 * r + 1] * inv);
        *reinterpret_cast<uint32_t*>(smem + Traits::offset(row, dt) + (lane & 3) * 4) = packed;
      }
    }
  // Each warp reads back only the rows it wrote.
  __syncwarp();
  constexpr int kWarpRows = 16 * Traits::kMTiles;
  constexpr int kChunks = kWarpRows * Traits::kChunksPerRow;
#pragma unroll
  for (int i = 0; i < kChunks / 32; ++i) {
    const int idx = i * 32 + lane;
    const int row = warp * kWarpRows + idx / Traits::kChunksPerRow;
    const int chunk = idx % Traits::kChunksPerRow;
    if (row < q_valid) {
      const uint4 val = *reinterpret_cast<const uint4*>(smem + Traits::offset(row, chunk));
      *reinterpret_cast<uint4*>(out + row * o_row_stride + chunk * 8) = val;
    }
  }
}

}  // namespace sparseplan::cuda
