#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/block_mass_kernel.cuh"
#include "kernels/block_mass_sm90.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda::detail {

template <typename Element, int kHeadDim, int kMTiles>
void run_block_mass(const BlockMassParams& p, cudaStream_t stream) {
  using Traits = FlashTraits<Element, kHeadDim, kMTiles>;
  auto kernel = block_mass_kernel<Traits>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Traits::kMassSmemBytes),
             "block mass: raising the shared-memory limit");
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  check_cuda(cudaMemsetAsync(p.mass, 0, sizeof(float) * size_t(p.batch) * p.heads * nqb * nkb,
                             stream),
             "clearing the block mass");
  const dim3 grid(nqb, p.heads, p.batch);
  kernel<<<grid, Traits::kThreads, Traits::kMassSmemBytes, stream>>>(p);
  check_cuda(cudaGetLastError(), "block mass launch");
}

// Hopper: one chunk per key block (block_k keys), a warpgroup per 64 query rows.
template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_mass_sm90(const BlockMassParams& p, cudaStream_t stream) {
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  check_cuda(cudaMemsetAsync(p.mass, 0, sizeof(float) * size_t(p.batch) * p.heads * nqb * nkb,
                             stream),
             "clearing the block mass");
  const dim3 grid(nqb, p.heads, p.batch);
  auto launch = [&](auto traits) {
    using Traits = decltype(traits);
    auto kernel = block_mass_sm90_kernel<Traits>;
    const int smem = Traits::kQBytes + 2 * Traits::kKBytes + 1024;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "block mass (sm90): raising the shared-memory limit");
    kernel<<<grid, Traits::kThreads, smem, stream>>>(p);
  };
  if (p.block_k == 64) launch(Sm90Traits<Element, kHeadDim, kWarpGroups, 64>{});
  else launch(Sm90Traits<Element, kHeadDim, kWarpGroups, 128>{});
  check_cuda(cudaGetLastError(), "block mass (sm90) launch");
}

template void run_block_mass_sm90<__nv_bfloat16, 64, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__nv_bfloat16, 64, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__nv_bfloat16, 128, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__nv_bfloat16, 128, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__half, 64, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__half, 64, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__half, 128, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass_sm90<__half, 128, 2>(const BlockMassParams&, cudaStream_t);

template void run_block_mass<__nv_bfloat16, 64, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__nv_bfloat16, 64, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__nv_bfloat16, 128, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__nv_bfloat16, 128, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__half, 64, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__half, 64, 2>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__half, 128, 1>(const BlockMassParams&, cudaStream_t);
template void run_block_mass<__half, 128, 2>(const BlockMassParams&, cudaStream_t);

}  // namespace sparseplan::cuda::detail
