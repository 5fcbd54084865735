#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/block_scan.cuh"
#include "kernels/flash_fwd_kernel.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda {
namespace {

__device__ __forceinline__ int row_nnz(const int32_t* row_offsets, int item, int nqb, int nkb) {
  const int bh = item / nqb, qb = item % nqb;
  const int32_t* o = row_offsets + int64_t(bh) * (nqb + 1) + qb;
  return min(max(o[1] - o[0], 0), nkb);
}

__global__ void nnz_histogram_kernel(const int32_t* row_offsets, int num_items, int nqb, int nkb,
                                     int32_t* histogram) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < num_items; i += gridDim.x * blockDim.x)
    atomicAdd(histogram + row_nnz(row_offsets, i, nqb, nkb), 1);
}

// histogram[v] becomes the number of items with nnz > v: the first slot of bucket v when the
// list runs heaviest first.
__global__ void descending_cursor_kernel(int32_t* histogram, int nkb) {
  __shared__ int scratch[33];
  const int buckets = nkb + 1;
  const int per_thread = (buckets + blockDim.x - 1) / blockDim.x;
  // Thread t owns buckets counted from the top: v = nkb - (t * per_thread + j).
  int local = 0;
  for (int j = 0; j < per_thread; ++j) {
    const int v = nkb - (int(threadIdx.x) * per_thread + j);
    if (v >= 0) local += histogram[v];
  }
  int total;
  int run = block_exclusive_scan(local, scratch, &total);
  for (int j = 0; j < per_thread; ++j) {
    const int v = nkb - (int(threadIdx.x) * per_thread + j);
    if (v >= 0) {
      const int c = histogram[v];
      histogram[v] = run;
      run += c;
    }
  }
}

__global__ void scatter_work_kernel(const int32_t* row_offsets, int num_items, int nqb, int nkb,
                                    int32_t* cursor, int32_t* work_list) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < num_items; i += gridDim.x * blockDim.x)
    work_list[atomicAdd(cursor + row_nnz(row_offsets, i, nqb, nkb), 1)] = i;
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

void build_work_list(const int32_t* row_offsets, int batch_heads, int nqb, int nkb,
                     int32_t* work_list, int32_t* histogram, cudaStream_t stream) {
  const int items = batch_heads * nqb;
  check_cuda(cudaMemsetAsync(histogram, 0, sizeof(int32_t) * size_t(nkb + 1), stream),
             "clearing the work histogram");
  const int blocks = std::min((items + 255) / 256, 1024);
  nnz_histogram_kernel<<<blocks, 256, 0, stream>>>(row_offsets, items, nqb, nkb, histogram);
  descending_cursor_kernel<<<1, 1024, 0, stream>>>(histogram, nkb);
  scatter_work_kernel<<<blocks, 256, 0, stream>>>(row_offsets, items, nqb, nkb, histogram,
                                                  work_list);
  check_cuda(cudaGetLastError(), "work list launch");
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
