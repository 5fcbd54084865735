// Launchers of the sm_90a (wgmma) attention kernels.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/flash_sm90.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda::detail {
namespace {

template <typename Traits>
void launch_dense_sm90(const AttentionParams& p, cudaStream_t stream) {
  auto kernel = dense_attention_sm90_kernel<Traits>;
  const int smem = Traits::kSmemBytes + 1024;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "dense attention (sm90): raising the shared-memory limit");
  const dim3 grid((p.q_len + Traits::kBlockM - 1) / Traits::kBlockM, p.heads, p.batch);
  kernel<<<grid, Traits::kThreads, smem, stream>>>(p);
  check_cuda(cudaGetLastError(), "dense attention (sm90) launch");
}

template <typename Traits>
void launch_sparse_sm90(const AttentionParams& p, cudaStream_t stream) {
  auto kernel = block_sparse_attention_sm90_kernel<Traits>;
  const int smem = Traits::kSmemBytes + 1024;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "block-sparse attention (sm90): raising the shared-memory limit");
  const int grid = std::min(
      p.num_work, persistent_grid(reinterpret_cast<const void*>(kernel), Traits::kThreads, smem));
  if (grid == 0) return;
  kernel<<<grid, Traits::kThreads, smem, stream>>>(p);
  check_cuda(cudaGetLastError(), "block-sparse attention (sm90) launch");
}

}  // namespace

// Two warpgroups and 128-key chunks measured fastest of {1, 2} x {64, 128} on the H100
// (bench/RESULTS.md); 128-key chunks would straddle 64-key blocks whose padding differs.
template <typename Element, int kHeadDim>
void run_dense_sm90(const AttentionParams& p, cudaStream_t stream) {
  if (p.kv_block_valid != nullptr && p.block_k == 64)
    launch_dense_sm90<Sm90Traits<Element, kHeadDim, 2, 64>>(p, stream);
  else
    launch_dense_sm90<Sm90Traits<Element, kHeadDim, 2, 128>>(p, stream);
}

template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_sparse_sm90(const AttentionParams& p, cudaStream_t stream) {
  if (p.block_k == 64)
    launch_sparse_sm90<Sm90Traits<Element, kHeadDim, kWarpGroups, 64>>(p, stream);
  else
    launch_sparse_sm90<Sm90Traits<Element, kHeadDim, kWarpGroups, 128>>(p, stream);
}

#define SPARSEPLAN_INSTANTIATE(E, D)                                                    \
  template void run_dense_sm90<E, D>(const AttentionParams&, cudaStream_t);             \
  template void run_block_sparse_sm90<E, D, 1>(const AttentionParams&, cudaStream_t);   \
  template void run_block_sparse_sm90<E, D, 2>(const AttentionParams&, cudaStream_t);
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 64)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 128)
SPARSEPLAN_INSTANTIATE(__half, 64)
SPARSEPLAN_INSTANTIATE(__half, 128)
#undef SPARSEPLAN_INSTANTIATE

}  // namespace sparseplan::cuda::detail
