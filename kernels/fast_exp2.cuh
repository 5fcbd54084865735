// 2^x for softmax-style arguments (x <= 0) as one MUFU.EX2. exp2f without fast-math wraps it in
// denormal scaling; results below 2^-126 are zero for softmax anyway. (A polynomial on the FMA
// pipe for part of the exponentials, to relieve MUFU at head_dim 64, measured slower: these
// kernels are bound by issue slots as much as by MUFU; bench/RESULTS.md.)
#pragma once

namespace sparseplan::cuda {

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace sparseplan::cuda
