#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <cub/device/device_radix_sort.cuh>

#include "kernels/flash_fwd_kernel.cuh"
#include "kernels/launch.h"
#include "kernels/pair_rounds.h"

namespace sparseplan::cuda {
namespace {

using detail::check_cuda;
void check_cuda_call(cudaError_t e, const char* what) { check_cuda(e, what); }

__device__ __forceinline__ int row_nnz(const int32_t* row_offsets, int item, int nqb, int nkb) {
  const int bh = item / nqb, qb = item % nqb;
  const int32_t* o = row_offsets + int64_t(bh) * (nqb + 1) + qb;
  return min(max(o[1] - o[0], 0), nkb);
}

// Each item's weight (row nnz) into keys, and the largest into *max_weight; values: the item
// index.
__global__ void work_weights_kernel(const int32_t* row_offsets, int num_items, int nqb, int nkb,
                                    int32_t* keys, int32_t* items, int* max_weight) {
  for (int i0 = blockIdx.x * blockDim.x; i0 < num_items; i0 += gridDim.x * blockDim.x) {
    const int i = i0 + threadIdx.x;
    const int w = i < num_items ? row_nnz(row_offsets, i, nqb, nkb) : 0;
    if (i < num_items) {
      keys[i] = w;
      items[i] = i;
    }
    const int m = __reduce_max_sync(0xffffffffu, w);
    if (threadIdx.x % 32 == 0) atomicMax(max_weight, m);
  }
}

// Sort keys from weights: heavier items get smaller keys. With `buckets` > 0 the weights go
// into that many classes of equal width below the largest, the stable radix sort keeping
// head-major runs within a class; 0 sorts by exact weight.
__global__ void bucket_keys_kernel(int32_t* keys, int num_items, const int* max_weight,
                                   int buckets, int nkb) {
  const int mx = *max_weight;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < num_items; i += gridDim.x * blockDim.x)
    keys[i] = buckets > 0 ? (mx - keys[i]) * buckets / (mx + 1) : nkb - keys[i];
}

// SPARSEPLAN_WORK_BUCKETS (read at every call, so one process can time each) overrides the
// default of 1, pure head-major order: since the CTAs draw their items (WsItems) no deal needs
// items of one weight per round, and CTAs running at once share a head's K/V. Exact weights
// (0) scatter Wan 480p's many edge classes across heads (bench/RESULTS.md, "Work order").
int work_buckets() {
  const char* e = std::getenv("SPARSEPLAN_WORK_BUCKETS");
  return e != nullptr ? std::max(0, std::atoi(e)) : 1;
}

constexpr int kPairWarps = 4;
constexpr int kPairWords = detail::kMaxPairKeyBlocks / 32;

// With q_pair_order: per (batch, head), one CTA, whether the head's order is a permutation of
// its nqb query blocks (at most kMaxPairKeyBlocks, a bit each in shared memory); then each
// pair's blocks (the order's, or 2 pair and 2 pair + 1 where it is not one) and where its
// union goes (first: the head's first CSR entry plus the rows' lengths of the pairs before it,
// so that the unions lie one after another over the head's CSR range) into pair_rows.
constexpr int kOrderThreads = 256;

__global__ void pair_order_kernel(const int32_t* row_offsets, const int32_t* order, int nqb,
                                  PairRows* pair_rows) {
  __shared__ uint32_t seen[detail::kMaxPairKeyBlocks / 32];
  __shared__ int64_t sums[kOrderThreads];
  const int bh = blockIdx.x, tid = threadIdx.x;
  const int32_t* head = order + int64_t(bh) * nqb;
  const int32_t* o = row_offsets + int64_t(bh) * (nqb + 1);
  const int words = (nqb + 31) / 32, npairs = (nqb + 1) / 2;
  const bool fits = nqb <= detail::kMaxPairKeyBlocks;
  if (fits)
    for (int w = tid; w < words; w += kOrderThreads) seen[w] = 0u;
  __syncthreads();
  bool bad = !fits;
  if (fits)
    for (int i = tid; i < nqb; i += kOrderThreads) {
      const int b = __ldg(head + i);
      bad = bad || b < 0 || b >= nqb ||
            ((atomicOr(seen + (b >> 5), 1u << (b & 31)) >> (b & 31)) & 1u);
    }
  const bool ordered = !__syncthreads_or(bad);
  const auto block = [&](int i) { return i >= nqb ? -1 : ordered ? __ldg(head + i) : i; };
  const auto length = [&](int b) {
    return b < 0 ? int64_t(0) : max(int64_t(o[b + 1]) - o[b], int64_t(0));
  };
  // Each thread a run of pairs: their lengths summed, scanned across threads, then placed.
  const int per = (npairs + kOrderThreads - 1) / kOrderThreads;
  const int p0 = min(tid * per, npairs), p1 = min(p0 + per, npairs);
  int64_t sum = 0;
  for (int pr = p0; pr < p1; ++pr) sum += length(block(2 * pr)) + length(block(2 * pr + 1));
  sums[tid] = sum;
  __syncthreads();
  for (int d = 1; d < kOrderThreads; d <<= 1) {
    const int64_t x = tid >= d ? sums[tid - d] : 0;
    __syncthreads();
    sums[tid] += x;
    __syncthreads();
  }
  int64_t at = o[0] + sums[tid] - sum;
  for (int pr = p0; pr < p1; ++pr) {
    const int qa = block(2 * pr), qb = block(2 * pr + 1);
    pair_rows[int64_t(bh) * npairs + pr] = PairRows{{qa, qb}, int32_t(at), 0, {0, 0}, 0, 0, 0};
    at += length(qa) + length(qb);
  }
}

// The union's members in key order from a pair's two bitmaps (pair_rounds.h's Members).
struct BitmapMembers {
  const uint32_t* a;
  const uint32_t* b;
  int word = -1;
  uint32_t rest = 0u;  // bits of `word` still to visit
  __device__ int next() {
    while (rest == 0u) {
      ++word;
      rest = a[word] | b[word];
    }
    const int bit = __ffs(rest) - 1;
    rest &= rest - 1u;
    return int((a[word] >> bit) & 1u) | int((b[word] >> bit) & 1u) << 1;
  }
};

// The sum of x over the lanes below this one.
__device__ __forceinline__ int warp_exclusive_sum(int x) {
  const int lane = threadIdx.x % 32;
  int incl = x;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += y;
  }
  return incl - x;
}

// One warp per pair of query blocks (blocks 2 pair and 2 pair + 1, written over their own CSR
// range; or, placed by pair_order_kernel, the blocks and range in pair_rows): both rows' key
// blocks go into a bitmap each (duplicates and columns outside [0, nkb) drop out, as they
// attend nothing), then the lanes walk 32 words at a time and write the union, one code per
// key block (and, given the fused order's tile table, its tile), warp scans placing them: in
// key order, or with split_stages the stage kernel's split stages first (PairRows::split).
// Given pair_rounds, lane 0 then plans the pair's rounds (pair_rounds.h) for a
// ring of `ring_slots` blocks (0: shared rounds only). Weight (sort_work): the union size, so
// heavier pairs come first.
__global__ void pair_union_kernel(const int32_t* row_offsets, const int32_t* cols,
                                  int64_t num_cols, bool ordered, int items, int npairs, int nqb,
                                  int nkb, PairRows* pair_rows, int32_t* pair_chunks,
                                  const int2* spans, int2* pair_tiles, int2* pair_rounds,
                                  int ring_slots, bool split_stages, int kv_len, int block_k,
                                  const int32_t* kv_block_valid, int32_t* keys,
                                  int32_t* item_ids, int* max_weight) {
  __shared__ uint32_t bits[kPairWarps][2][kPairWords];
  constexpr unsigned kAll = 0xffffffffu;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint32_t* in_a = bits[warp][0];
  uint32_t* in_b = bits[warp][1];
  const int words = (nkb + 31) / 32;
  const int heads = items / npairs;
  for (int item = blockIdx.x * kPairWarps + warp; item < items; item += gridDim.x * kPairWarps) {
    const int bh = item / npairs, pair = item % npairs;
    const int32_t* o = row_offsets + int64_t(bh) * (nqb + 1);
    PairRows r{{2 * pair, 2 * pair + 1 < nqb ? 2 * pair + 1 : -1}, 0, 0, {0, 0}, 0, 0, 0};
    if (ordered) r = pair_rows[item];
    else r.first = o[2 * pair];
    const int qa = r.block[0], qb = r.block[1];
    const int64_t a0 = o[qa], a1 = o[qa + 1];
    const int64_t b0 = qb >= 0 ? o[qb] : 0, b1 = qb >= 0 ? o[qb + 1] : 0;
    // The union (and its rounds, two more entries a pair) is written over the pair's share of
    // its head's CSR range, so it must lie inside col_indices and before the next head's.
    const int64_t head_end = bh + 1 < heads ? row_offsets[int64_t(bh + 1) * (nqb + 1)] : num_cols;
    const bool inside = 0 <= a0 && a0 <= a1 && 0 <= b0 && b0 <= b1 && a1 <= num_cols &&
                        b1 <= num_cols && o[0] <= r.first &&
                        r.first + (a1 - a0) + (b1 - b0) <= min(num_cols, head_end);
    for (int w = lane; w < words; w += 32) in_a[w] = in_b[w] = 0u;
    __syncwarp();
    if (inside) {
      for (int64_t c = a0 + lane; c < a1; c += 32) {
        const int kb = __ldg(cols + c);
        if (kb >= 0 && kb < nkb) atomicOr(in_a + (kb >> 5), 1u << (kb & 31));
      }
      for (int64_t c = b0 + lane; c < b1; c += 32) {
        const int kb = __ldg(cols + c);
        if (kb >= 0 && kb < nkb) atomicOr(in_b + (kb >> 5), 1u << (kb & 31));
      }
    }
    __syncwarp();
    int len_a = 0, len_b = 0, total = 0;
    for (int w = lane; w < words; w += 32) {
      len_a += __popc(in_a[w]);
      len_b += __popc(in_b[w]);
      total += __popc(in_a[w] | in_b[w]);
    }
    len_a = __reduce_add_sync(kAll, len_a);
    len_b = __reduce_add_sync(kAll, len_b);
    total = __reduce_add_sync(kAll, total);
    // Split stages: the first `split` blocks only query block a lists, each followed by one
    // only b lists, lead the union; the rest follow in key order.
    const int shared = len_a + len_b - total;
    const int split = split_stages ? min(len_a, len_b) - shared : 0;
    int seen_a = 0, seen_b = 0, seen_rest = 0;  // before this lane's word
    for (int w0 = 0; w0 < words; w0 += 32) {
      const int w = w0 + lane;
      const uint32_t a = w < words ? in_a[w] : 0u, b = w < words ? in_b[w] : 0u;
      const int only_a = __popc(a & ~b), only_b = __popc(b & ~a);
      int rank_a = seen_a + warp_exclusive_sum(only_a);
      int rank_b = seen_b + warp_exclusive_sum(only_b);
      const int rest = __popc(a & b) + only_a - max(0, min(only_a, split - rank_a)) + only_b -
                       max(0, min(only_b, split - rank_b));
      int at = 2 * split + seen_rest + warp_exclusive_sum(rest);
      seen_a = __shfl_sync(kAll, rank_a + only_a, 31);
      seen_b = __shfl_sync(kAll, rank_b + only_b, 31);
      const int rest_end = __shfl_sync(kAll, at + rest, 31) - 2 * split;
      for (uint32_t u = a | b; u != 0u; u &= u - 1u) {
        const int bit = __ffs(u) - 1;
        const int members = int((a >> bit) & 1u) | int((b >> bit) & 1u) << 1;
        int pos = 0;
        if (members == 1) pos = rank_a < split ? 2 * rank_a : at++;
        else if (members == 2) pos = rank_b < split ? 2 * rank_b + 1 : at++;
        else pos = at++;
        if (members == 1) ++rank_a;
        if (members == 2) ++rank_b;
        if (spans != nullptr) pair_tiles[r.first + pos] = spans[w * 32 + bit];
        pair_chunks[r.first + pos] = encode_pair_chunk(w * 32 + bit, members);
      }
      seen_rest = rest_end;
    }
    __syncwarp();  // lane 0 reads the union the lanes wrote
    if (lane == 0) {
      r.count = total;
      r.split = split;
      if (pair_rounds != nullptr) {
        const PairRoundsPlan plan =
            plan_pair_rounds(BitmapMembers{in_a, in_b}, BitmapMembers{in_a, in_b}, total, len_a,
                             len_b, ring_slots, ring_slots > 0);
        r.own = plan.own;
        r.rounds[0] = plan.rounds[0];
        r.rounds[1] = plan.rounds[1];
        r.steps = r.first + 2 * item;
        const auto valid = [&](int pos) {
          return key_block_valid(pair_chunk_block(pair_chunks[r.first + pos]), block_k, kv_len,
                                 kv_block_valid);
        };
        write_pair_rounds(BitmapMembers{in_a, in_b}, total, plan.own,
                          [&](int round, int g, int32_t code) {
                            pair_rounds[r.steps + 2 * round + g] = make_int2(
                                code, encode_round_valid(valid(round_first(code)),
                                                         valid(round_second(code))));
                          });
      }
      pair_rows[item] = r;
      keys[item] = total;
      atomicMax(max_weight, total);
      item_ids[item] = item;
    }
    __syncwarp();  // every lane has read the bitmaps before the next pair clears them
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

// A work-list build's scratch (see work_list_scratch_bytes): the items' weights, then sort
// keys in keys_in, the sorted keys, the item ids, the largest weight (cleared here) and the
// sort's temporary storage.
struct WorkScratch {
  int32_t* keys_in;
  int32_t* keys_out;
  int32_t* items_in;
  int* max_weight;
  void* temp;
  size_t temp_bytes;
};

WorkScratch carve_work_scratch(void* scratch, int items, int nkb, cudaStream_t stream) {
  const size_t array = align256(sizeof(int32_t) * size_t(items));
  uint8_t* base = static_cast<uint8_t*>(scratch);
  const WorkScratch w{reinterpret_cast<int32_t*>(base), reinterpret_cast<int32_t*>(base + array),
                      reinterpret_cast<int32_t*>(base + 2 * array),
                      reinterpret_cast<int*>(base + 3 * array), base + 3 * array + 256,
                      sort_temp_bytes(items, nkb)};
  check_cuda_call(cudaMemsetAsync(w.max_weight, 0, sizeof(int), stream),
                  "clearing the work weight");
  return w;
}

// Where the item ids go: with one weight class the stable sort would keep their order, so
// they go straight into work_list and sort_work has nothing to do.
int32_t* item_ids(const WorkScratch& w, int buckets, int32_t* work_list) {
  return buckets == 1 ? work_list : w.items_in;
}

// Turns the weights in keys_in into sort keys (bucket_keys_kernel) and sorts the item ids by
// them, stably, into work_list.
void sort_work(const WorkScratch& w, int items, int nkb, int buckets, int32_t* work_list,
               cudaStream_t stream) {
  if (buckets == 1) return;
  const int blocks = std::min((items + 255) / 256, 1024);
  bucket_keys_kernel<<<blocks, 256, 0, stream>>>(w.keys_in, items, w.max_weight, buckets, nkb);
  check_cuda_call(cudaGetLastError(), "work key launch");
  size_t temp_bytes = w.temp_bytes;
  check_cuda_call(cub::DeviceRadixSort::SortPairs(w.temp, temp_bytes, w.keys_in, w.keys_out,
                                                  w.items_in, work_list, items, 0, key_bits(nkb),
                                                  stream),
                  "sorting the work list");
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

// WorkScratch: three arrays of items, the largest weight, then the sort's temporary storage.
size_t work_list_scratch_bytes(int items, int nkb) {
  return 3 * align256(sizeof(int32_t) * size_t(items)) + 256 + sort_temp_bytes(items, nkb);
}

void build_work_list(const int32_t* row_offsets, int batch_heads, int nqb, int nkb,
                     int32_t* work_list, void* scratch, cudaStream_t stream) {
  const int items = batch_heads * nqb;
  const int buckets = std::min(work_buckets(), nkb);
  const WorkScratch w = carve_work_scratch(scratch, items, nkb, stream);
  const int blocks = std::min((items + 255) / 256, 1024);
  work_weights_kernel<<<blocks, 256, 0, stream>>>(row_offsets, items, nqb, nkb, w.keys_in,
                                                  item_ids(w, buckets, work_list), w.max_weight);
  check_cuda(cudaGetLastError(), "work list launch");
  sort_work(w, items, nkb, buckets, work_list, stream);
}

size_t pair_work_scratch_bytes(int items, int nkb) { return work_list_scratch_bytes(items, nkb); }

void build_pair_work_list(const AttentionParams& p, int nqb, int nkb, int32_t* work_list,
                          PairRows* pair_rows, int32_t* pair_chunks, int32_t* pair_tiles,
                          int32_t* pair_rounds, int ring_slots, bool split_stages,
                          void* scratch, cudaStream_t stream) {
  if (nkb > kMaxPairKeyBlocks)
    throw std::invalid_argument("block_sparse_attention: pairing 64-row query blocks needs at most " +
                                std::to_string(kMaxPairKeyBlocks) + " key blocks");
  const int npairs = (nqb + 1) / 2;
  const int items = p.batch * p.heads * npairs;
  const int blocks = std::min((items + kPairWarps - 1) / kPairWarps, 2048);
  if (blocks == 0) return;
  const bool ordered = p.q_pair_order != nullptr;
  if (ordered) {
    pair_order_kernel<<<p.batch * p.heads, kOrderThreads, 0, stream>>>(
        p.row_offsets, p.q_pair_order, nqb, pair_rows);
    check_cuda(cudaGetLastError(), "pair order launch");
  }
  const int buckets = std::min(work_buckets(), nkb);
  const WorkScratch w = carve_work_scratch(scratch, items, nkb, stream);
  pair_union_kernel<<<blocks, 32 * kPairWarps, 0, stream>>>(
      p.row_offsets, p.col_indices, p.num_cols, ordered, items, npairs, nqb, nkb, pair_rows,
      pair_chunks, pair_tiles ? reinterpret_cast<const int2*>(p.video_spans) : nullptr,
      reinterpret_cast<int2*>(pair_tiles), reinterpret_cast<int2*>(pair_rounds), ring_slots,
      split_stages, p.kv_len, p.block_k, p.kv_block_valid, w.keys_in,
      item_ids(w, buckets, work_list), w.max_weight);
  check_cuda(cudaGetLastError(), "pair work list launch");
  sort_work(w, items, nkb, buckets, work_list, stream);
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
