#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/block_mass_kernel.cuh"
#include "kernels/block_mass_ws.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda::detail {
namespace {

void clear_mass(const BlockMassParams& p, cudaStream_t stream) {
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  check_cuda(cudaMemsetAsync(p.mass, 0, sizeof(float) * size_t(p.batch) * p.heads * nqb * nkb,
                             stream),
             "clearing the block mass");
}

// Returns false (nothing launched) when the tensors cannot be mapped for TMA.
template <typename Traits>
bool launch_mass_ws(const BlockMassParams& p, cudaStream_t stream) {
  WsMassParams mp{};
  AttentionParams& a = mp.w.a;
  a.q = p.q;
  a.k = a.v = p.k;
  a.q_batch_stride = p.q_batch_stride, a.q_row_stride = p.q_row_stride, a.q_head_stride = p.q_head_stride;
  a.k_batch_stride = a.v_batch_stride = p.k_batch_stride;
  a.k_row_stride = a.v_row_stride = p.k_row_stride;
  a.k_head_stride = a.v_head_stride = p.k_head_stride;
  a.batch = p.batch, a.heads = p.heads, a.kv_heads = p.kv_heads;
  a.q_len = p.q_len, a.kv_len = p.kv_len, a.head_dim = p.head_dim, a.scale = p.scale;
  a.block_q = p.block_q, a.block_k = p.block_k, a.kv_block_valid = p.kv_block_valid;
  mp.lse = p.lse;
  mp.mass = p.mass;
  mp.q_block_valid = p.q_block_valid;
  if (!encode_ws_maps(a, Traits::kBlockM, Traits::kBlockN, false, &mp.w)) return false;
  clear_mass(p, stream);
  launch_ws_kernel<Traits>(block_mass_ws_kernel<Traits>, mp,
                           p.batch * p.heads * ((p.q_len + Traits::kBlockM - 1) / Traits::kBlockM),
                           stream, "block mass (sm90)");
  return true;
}

}  // namespace

template <typename Element, int kHeadDim, int kMTiles>
void run_block_mass(const BlockMassParams& p, cudaStream_t stream) {
  using Traits = FlashTraits<Element, kHeadDim, kMTiles>;
  auto kernel = block_mass_kernel<Traits>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Traits::kMassSmemBytes),
             "block mass: raising the shared-memory limit");
  clear_mass(p, stream);
  const dim3 grid((p.q_len + p.block_q - 1) / p.block_q, p.heads, p.batch);
  kernel<<<grid, Traits::kThreads, Traits::kMassSmemBytes, stream>>>(p);
  check_cuda(cudaGetLastError(), "block mass launch");
}

// Hopper: one chunk per key block (block_k keys), a consumer warpgroup per 64 query rows, two K
// stages (four measured no faster) and one nominal V stage (nothing loads V). Without a TMA map
// for the tensors the mma.sync kernel runs instead.
template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_mass_sm90(const BlockMassParams& p, cudaStream_t stream) {
  const bool launched =
      p.block_k == 64 ? launch_mass_ws<WsTraits<Element, kHeadDim, kWarpGroups, 64, 2, 1>>(p, stream)
                      : launch_mass_ws<WsTraits<Element, kHeadDim, kWarpGroups, 128, 2, 1>>(p, stream);
  if (!launched) run_block_mass<Element, kHeadDim, kWarpGroups>(p, stream);
}

#define SPARSEPLAN_INSTANTIATE(E, D, M)                                                 \
  template void run_block_mass_sm90<E, D, M>(const BlockMassParams&, cudaStream_t);     \
  template void run_block_mass<E, D, M>(const BlockMassParams&, cudaStream_t);
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 64, 1)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 64, 2)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 128, 1)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 128, 2)
SPARSEPLAN_INSTANTIATE(__half, 64, 1)
SPARSEPLAN_INSTANTIATE(__half, 64, 2)
SPARSEPLAN_INSTANTIATE(__half, 128, 1)
SPARSEPLAN_INSTANTIATE(__half, 128, 2)
#undef SPARSEPLAN_INSTANTIATE

}  // namespace sparseplan::cuda::detail
