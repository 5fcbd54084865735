#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include <cub/device/device_radix_sort.cuh>

#include "kernels/flash_fwd_kernel.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda {
namespace {

using detail::check_cuda;
void check_cuda_call(cudaError_t e, const char* what) { check_cuda(e, what); }

__device__ __forceinline__ int row_nnz(const int32_t* row_offsets, int item, int nqb, int nkb) {
  const int bh = item / nqb, qb = item % nqb;
  const int32_t* o = row_offsets + int64_t(bh) * (nqb + 1) + qb;
  return min(max(o[1] - o[0], 0), nkb);
}

// Sort keys: heavier rows get smaller keys; values: the item index, so the stable radix sort
// keeps equal-nnz rows in head-major order and concurrent CTAs share a head's K/V in L2.
__global__ void work_keys_kernel(const int32_t* row_offsets, int num_items, int nqb, int nkb,
                                 int32_t* keys, int32_t* items) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < num_items; i += gridDim.x * blockDim.x) {
    keys[i] = nkb - row_nnz(row_offsets, i, nqb, nkb);
    items[i] = i;
  }
}

int key_bits(int nkb) {
  int bits = 1;
  while ((1 << bits) <= nkb) ++bits;
  return bits;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

size_t sort_temp_bytes(int items, int nkb) {
  size_t temp = 0;
  check_cuda_call(cub::DeviceRadixSort::SortPairs(nullptr, temp, static_cast<const int32_t*>(nullptr),
                                                  static_cast<int32_t*>(nullptr),
                                                  static_cast<const int32_t*>(nullptr),
                                                  static_cast<int32_t*>(nullptr), items, 0,
                                                  key_bits(nkb)),
                  "sizing the work-list sort");
  return temp;
}

}  // namespace

namespace detail {

int persistent_grid(const void* kernel, int threads, size_t smem_bytes) {
  int device = 0, sms = 0, per_sm = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "reading the SM count");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem_bytes),
             "occupancy query");
  return sms * (per_sm > 0 ? per_sm : 1);
}

size_t work_list_scratch_bytes(int items, int nkb) {
  return 3 * align256(sizeof(int32_t) * size_t(items)) + sort_temp_bytes(items, nkb);
}

void build_work_list(const int32_t* row_offsets, int batch_heads, int nqb, int nkb,
                     int32_t* work_list, void* scratch, cudaStream_t stream) {
  const int items = batch_heads * nqb;
  const size_t array = align256(sizeof(int32_t) * size_t(items));
  uint8_t* base = static_cast<uint8_t*>(scratch);
  int32_t* keys_in = reinterpret_cast<int32_t*>(base);
  int32_t* keys_out = reinterpret_cast<int32_t*>(base + array);
  int32_t* items_in = reinterpret_cast<int32_t*>(base + 2 * array);
  size_t temp = sort_temp_bytes(items, nkb);
  const int blocks = std::min((items + 255) / 256, 1024);
  work_keys_kernel<<<blocks, 256, 0, stream>>>(row_offsets, items, nqb, nkb, keys_in, items_in);
  check_cuda(cudaGetLastError(), "work list launch");
  check_cuda(cub::DeviceRadixSort::SortPairs(base + 3 * array, temp, keys_in, keys_out, items_in,
                                             work_list, items, 0, key_bits(nkb), stream),
             "sorting the work list");
}

template <typename Traits>
void launch_block_sparse(const AttentionParams& p, cudaStream_t stream) {
  auto kernel = block_sparse_attention_kernel<Traits>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Traits::kSmemBytes),
             "block-sparse attention: raising the shared-memory limit");
  const int grid = std::min(p.num_work, persistent_grid(reinterpret_cast<const void*>(kernel),
                                                        Traits::kThreads, Traits::kSmemBytes));
  if (grid == 0) return;
  kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(p);
  check_cuda(cudaGetLastError(), "block-sparse attention launch");
}

template <typename Element, int kHeadDim, int kMTiles>
void run_block_sparse(const AttentionParams& p, cudaStream_t stream) {
  launch_block_sparse<FlashTraits<Element, kHeadDim, kMTiles, 64>>(p, stream);
}

template void run_block_sparse<__nv_bfloat16, 64, 1>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__nv_bfloat16, 64, 2>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__nv_bfloat16, 128, 1>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__nv_bfloat16, 128, 2>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__half, 64, 1>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__half, 64, 2>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__half, 128, 1>(const AttentionParams&, cudaStream_t);
template void run_block_sparse<__half, 128, 2>(const AttentionParams&, cudaStream_t);

}  // namespace detail
}  // namespace sparseplan::cuda
