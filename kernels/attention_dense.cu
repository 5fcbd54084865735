#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>

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

int attention_kv_chunk(int head_dim) {
  static const int forced = [] {
    const char* env = std::getenv("SPARSEPLAN_KV_CHUNK");
    return env != nullptr ? std::atoi(env) : 0;
  }();
  if (forced == 32 || forced == 64) return forced;
  return head_dim == 128 ? 32 : 64;
}

template <typename Element, int kHeadDim>
void run_dense(const AttentionParams& p, cudaStream_t stream) {
  if (attention_kv_chunk(kHeadDim) == 32)
    launch_dense<FlashTraits<Element, kHeadDim, 2, 32>>(p, stream);
  else
    launch_dense<FlashTraits<Element, kHeadDim, 2, 64>>(p, stream);
}

template void run_dense<__nv_bfloat16, 64>(const AttentionParams&, cudaStream_t);
template void run_dense<__nv_bfloat16, 128>(const AttentionParams&, cudaStream_t);
template void run_dense<__half, 64>(const AttentionParams&, cudaStream_t);
template void run_dense<__half, 128>(const AttentionParams&, cudaStream_t);

}  // namespace sparseplan::cuda::detail
