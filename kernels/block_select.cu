// Online block selection (see ref::select_blocks), three launches: per row, a bitonic sort of
// (forced, mass, column) keys picks the count and marks the chosen columns; one CTA turns the
// counts into row offsets; per row, a scan over the marks writes the sorted columns.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/attention_api.h"
#include "kernels/block_scan.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda {
namespace {

constexpr int kSelectThreads = 256;
constexpr int kMaxKeyBlocks = 4096;

__device__ __forceinline__ float key_mass(uint64_t key) {
  return __uint_as_float(uint32_t(key >> 32) & 0x7fffffffu);
}

__global__ void __launch_bounds__(kSelectThreads)
    select_count_kernel(ref::SelectionRule rule, const float* mass, int nkb, int pow2,
                        const uint8_t* forced, uint8_t* chosen, int32_t* counts) {
  extern __shared__ uint64_t keys[];
  __shared__ float scratch[33];
  __shared__ int s_count;
  const int64_t row = blockIdx.x;
  const float* m = mass + row * nkb;
  int my_forced = 0;
  for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
    uint64_t key = 0;  // padding sorts last
    if (i < nkb) {
      const float x = m[i];
      const float v = x > 0.0f ? x : 0.0f;  // NaN and negatives count as 0
      const bool f = forced != nullptr && forced[i];
      my_forced += f ? 1 : 0;
      key = (uint64_t(f) << 63) | (uint64_t(__float_as_uint(v)) << 32) |
            uint64_t(0xffffffffu - uint32_t(i));
    }
    keys[i] = key;
  }
  if (threadIdx.x == 0) s_count = nkb;
  int num_forced = my_forced;
  // Bitonic sort, descending.
  __syncthreads();
  for (int k = 2; k <= pow2; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
        const int ixj = i ^ j;
        if (ixj > i) {
          const uint64_t a = keys[i], b = keys[ixj];
          const bool descending = (i & k) == 0;
          if ((a < b) == descending) {
            keys[i] = b;
            keys[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  // Forced count over the block.
  {
    int total_forced;
    int* iscratch = reinterpret_cast<int*>(scratch);
    block_exclusive_scan(num_forced, iscratch, &total_forced);
    num_forced = total_forced;
  }
  // Each thread owns a contiguous run of the sorted keys.
  const int per_thread = (nkb + blockDim.x - 1) / blockDim.x;
  const int first = threadIdx.x * per_thread;
  float local = 0.0f;
  for (int i = first; i < min(first + per_thread, nkb); ++i) local += key_mass(keys[i]);
  float total;
  float cum = block_exclusive_scan(local, scratch, &total);
  int count;
  if (rule.top_k > 0) {
    count = rule.top_k;
  } else {
    const float target = rule.mass_target * total;
    for (int i = first; i < min(first + per_thread, nkb); ++i) {
      cum += key_mass(keys[i]);
      if (cum >= target) {
        atomicMin(&s_count, i + 1);
        break;
      }
    }
    __syncthreads();
    count = s_count;
  }
  count = max(count, max(rule.min_blocks, num_forced));
  if (rule.max_blocks > 0) count = min(count, max(rule.max_blocks, num_forced));
  count = min(count, nkb);
  for (int i = threadIdx.x; i < nkb; i += blockDim.x) {
    const int col = int(0xffffffffu - uint32_t(keys[i]));
    chosen[row * nkb + col] = i < count ? 1 : 0;
  }
  if (threadIdx.x == 0) counts[row] = count;
}

// row_offsets[bh, qb] = columns before row (bh, qb); row_offsets[bh, nqb] = end of head bh.
__global__ void select_offsets_kernel(const int32_t* counts, int64_t rows, int nqb,
                                      int32_t* row_offsets) {
  __shared__ int scratch[33];
  const int64_t per_thread = (rows + blockDim.x - 1) / blockDim.x;
  const int64_t first = threadIdx.x * per_thread;
  const int64_t last = min(first + per_thread, rows);
  int local = 0;
  for (int64_t g = first; g < last; ++g) local += counts[g];
  int total;
  int run = block_exclusive_scan(local, scratch, &total);
  for (int64_t g = first; g < last; ++g) {
    const int64_t bh = g / nqb, qb = g % nqb;
    row_offsets[bh * (nqb + 1) + qb] = run;
    run += counts[g];
    if (qb == nqb - 1) row_offsets[bh * (nqb + 1) + nqb] = run;
  }
}

__global__ void __launch_bounds__(kSelectThreads)
    select_fill_kernel(const uint8_t* chosen, int nkb, int nqb, const int32_t* row_offsets,
                       int32_t* col_indices) {
  __shared__ int scratch[33];
  const int64_t row = blockIdx.x;
  const uint8_t* c = chosen + row * nkb;
  const int per_thread = (nkb + blockDim.x - 1) / blockDim.x;
  const int first = threadIdx.x * per_thread;
  const int last = min(first + per_thread, nkb);
  int local = 0;
  for (int i = first; i < last; ++i) local += c[i];
  int total;
  int pos = block_exclusive_scan(local, scratch, &total) +
            row_offsets[(row / nqb) * (nqb + 1) + row % nqb];
  for (int i = first; i < last; ++i)
    if (c[i]) col_indices[pos++] = i;
}

int next_pow2(int x) {
  int p = 1;
  while (p < x) p <<= 1;
  return p;
}

}  // namespace

size_t block_select_workspace_bytes(int64_t rows, int nkb) {
  return (size_t(rows) * nkb + 15) / 16 * 16 + sizeof(int32_t) * size_t(rows);
}

void block_select(const ref::SelectionRule& rule, const float* mass, int batch_heads, int nqb,
                  int nkb, const uint8_t* forced, int32_t* row_offsets, int32_t* col_indices,
                  void* workspace, cudaStream_t stream) {
  ref::check_selection_rule(rule);
  if (nkb <= 0 || nkb > kMaxKeyBlocks)
    throw std::invalid_argument("block_select: num_k_blocks must be in [1, 4096], got " +
                                std::to_string(nkb));
  const int64_t rows = int64_t(batch_heads) * nqb;
  if (rows == 0) return;
  uint8_t* chosen = static_cast<uint8_t*>(workspace);
  int32_t* counts = reinterpret_cast<int32_t*>(chosen + (size_t(rows) * nkb + 15) / 16 * 16);
  const int pow2 = std::max(next_pow2(nkb), 2);
  const size_t smem = sizeof(uint64_t) * size_t(pow2);
  detail::check_cuda(cudaFuncSetAttribute(select_count_kernel,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                     "block select: raising the shared-memory limit");
  select_count_kernel<<<unsigned(rows), kSelectThreads, smem, stream>>>(rule, mass, nkb, pow2,
                                                                        forced, chosen, counts);
  select_offsets_kernel<<<1, 1024, 0, stream>>>(counts, rows, nqb, row_offsets);
  select_fill_kernel<<<unsigned(rows), kSelectThreads, 0, stream>>>(chosen, nkb, nqb, row_offsets,
                                                                    col_indices);
  detail::check_cuda(cudaGetLastError(), "block select launch");
}

}  // namespace sparseplan::cuda
