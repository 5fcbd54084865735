// Block-wide exclusive prefix sum (any blockDim that is a multiple of 32, up to 1024).
#pragma once

namespace sparseplan::cuda {

// Every thread must call it. Returns the sum of x over lower threads; *total gets the sum
// over all. s_scratch holds 33 values.
template <typename T>
__device__ __forceinline__ T block_exclusive_scan(T x, T* s_scratch, T* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  T inclusive = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T y = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += y;
  }
  if (lane == 31) s_scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? s_scratch[lane] : T(0);
    T wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const T y = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += y;
    }
    if (lane < warps) s_scratch[lane] = wi - w;
    if (lane == 31) s_scratch[32] = wi;
  }
  __syncthreads();
  const T result = s_scratch[warp] + inclusive - x;
  *total = s_scratch[32];
  __syncthreads();
  return result;
}

}  // namespace sparseplan::cuda
