// Launchers of the sm_90a (wgmma) attention kernels, with the V^T pre-pass.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/flash_sm90.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda::detail {
namespace {

template <int kHeadDim>
void transpose_v(const AttentionParams& p, void* vt, int kv_pad, cudaStream_t stream) {
  const dim3 grid(kv_pad / 64, p.kv_heads, p.batch);
  transpose_v_kernel<kHeadDim><<<grid, 256, 0, stream>>>(p, static_cast<uint16_t*>(vt), kv_pad);
  check_cuda(cudaGetLastError(), "V transpose launch");
}

template <typename Traits>
void launch_dense_sm90(const AttentionParams& p, const void* vt, int kv_pad, cudaStream_t stream) {
  auto kernel = dense_attention_sm90_kernel<Traits>;
  const int smem = Traits::kSmemBytes + 1024;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "dense attention (sm90): raising the shared-memory limit");
  const dim3 grid((p.q_len + Traits::kBlockM - 1) / Traits::kBlockM, p.heads, p.batch);
  kernel<<<grid, Traits::kThreads, smem, stream>>>(
      p, static_cast<const typename Traits::Element*>(vt), kv_pad);
  check_cuda(cudaGetLastError(), "dense attention (sm90) launch");
}

template <typename Traits>
void launch_sparse_sm90(const AttentionParams& p, const void* vt, int kv_pad,
                        cudaStream_t stream) {
  auto kernel = block_sparse_attention_sm90_kernel<Traits>;
  const int smem = Traits::kSmemBytes + 1024;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "block-sparse attention (sm90): raising the shared-memory limit");
  const int grid = std::min(
      p.num_work, persistent_grid(reinterpret_cast<const void*>(kernel), Traits::kThreads, smem));
  if (grid == 0) return;
  kernel<<<grid, Traits::kThreads, smem, stream>>>(
      p, static_cast<const typename Traits::Element*>(vt), kv_pad);
  check_cuda(cudaGetLastError(), "block-sparse attention (sm90) launch");
}

}  // namespace

int sm90_kv_pad(int kv_len) { return (kv_len + 127) / 128 * 128; }

namespace {

// Tuning knobs for measurement runs: SPARSEPLAN_SM90_V=copy uses the V^T copy instead of
// reading V directly; SPARSEPLAN_SM90_DENSE=WGxN picks the dense tile (warpgroups x keys).
bool v_copy() {
  const char* e = std::getenv("SPARSEPLAN_SM90_V");
  return e != nullptr && std::string(e) == "copy";
}
std::string dense_config() {
  const char* e = std::getenv("SPARSEPLAN_SM90_DENSE");
  return e != nullptr ? std::string(e) : std::string("2x128");
}

template <typename Element, int kHeadDim, int kWG, int kN>
void dense_with(const AttentionParams& p, void* vt, cudaStream_t stream) {
  const int kv_pad = sm90_kv_pad(p.kv_len);
  if (v_copy()) {
    transpose_v<kHeadDim>(p, vt, kv_pad, stream);
    launch_dense_sm90<Sm90Traits<Element, kHeadDim, kWG, kN, false>>(p, vt, kv_pad, stream);
  } else {
    launch_dense_sm90<Sm90Traits<Element, kHeadDim, kWG, kN, true>>(p, vt, kv_pad, stream);
  }
}

template <typename Element, int kHeadDim, int kWG, int kN>
void sparse_with(const AttentionParams& p, void* vt, cudaStream_t stream) {
  const int kv_pad = sm90_kv_pad(p.kv_len);
  if (v_copy()) {
    transpose_v<kHeadDim>(p, vt, kv_pad, stream);
    launch_sparse_sm90<Sm90Traits<Element, kHeadDim, kWG, kN, false>>(p, vt, kv_pad, stream);
  } else {
    launch_sparse_sm90<Sm90Traits<Element, kHeadDim, kWG, kN, true>>(p, vt, kv_pad, stream);
  }
}

}  // namespace

template <typename Element, int kHeadDim>
void run_dense_sm90(const AttentionParams& p, void* vt, cudaStream_t stream) {
  // 128-key chunks would straddle two 64-key blocks whose padding differs.
  const std::string c = (p.kv_block_valid != nullptr && p.block_k == 64) ? "2x64" : dense_config();
  if (c == "1x64") dense_with<Element, kHeadDim, 1, 64>(p, vt, stream);
  else if (c == "2x64") dense_with<Element, kHeadDim, 2, 64>(p, vt, stream);
  else if (c == "1x128") dense_with<Element, kHeadDim, 1, 128>(p, vt, stream);
  else dense_with<Element, kHeadDim, 2, 128>(p, vt, stream);
}

template <typename Element, int kHeadDim, int kWarpGroups>
void run_block_sparse_sm90(const AttentionParams& p, void* vt, cudaStream_t stream) {
  if (p.block_k == 64) sparse_with<Element, kHeadDim, kWarpGroups, 64>(p, vt, stream);
  else sparse_with<Element, kHeadDim, kWarpGroups, 128>(p, vt, stream);
}

#define SPARSEPLAN_INSTANTIATE(E, D)                                                    \
  template void run_dense_sm90<E, D>(const AttentionParams&, void*, cudaStream_t);      \
  template void run_block_sparse_sm90<E, D, 1>(const AttentionParams&, void*, cudaStream_t); \
  template void run_block_sparse_sm90<E, D, 2>(const AttentionParams&, void*, cudaStream_t);
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 64)
SPARSEPLAN_INSTANTIATE(__nv_bfloat16, 128)
SPARSEPLAN_INSTANTIATE(__half, 64)
SPARSEPLAN_INSTANTIATE(__half, 128)
#undef SPARSEPLAN_INSTANTIATE

}  // namespace sparseplan::cuda::detail
