#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/flash_fwd_kernel.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda::detail {

namespace {

template <typename Traits>
void launch_dense(const AttentionParams& p, cudaStream_t stream) {
  auto kernel = dense_attention_kernel<Traits>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Traits::kSmemBytes),
             "dense attention: raising the shared-memory limit");
  const dim3 grid((p.q_len + Traits::kBlockM - 1) / Traits::kBlockM, p.heads, p.batch);
  kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(p);
  check_cuda(cudaGetLastError(), "dense attention launch");
}

}  // namespace

template <typename Element, int kHeadDim>
void run_dense(const AttentionParams& p, cudaStream_t stream) {
  // 64-key chunks: 32 removes the register spills at head_dim 128 but measured 8% slower on
  // the H100 (twice the barriers per key), see bench/RESULTS.md.
  launch_dense<FlashTraits<Element, kHeadDim, 2, 64>>(p, stream);
}

template void run_dense<__nv_bfloat16, 64>(const AttentionParams&, cudaStream_t);
template void run_dense<__nv_bfloat16, 128>(const AttentionParams&, cudaStream_t);
template void run_dense<__half, 64>(const AttentionParams&, cudaStream_t);
template void run_dense<__half, 128>(const AttentionParams&, cudaStream_t);

}  // namespace sparseplan::cuda::detail
