// Hopper (sm_90a) attention forward: the same tile schedule, chunk sources, online softmax and
// epilogue as the sm80 path, with both products on wgmma. One warpgroup owns 64 query rows;
// S = Q K^T reads Q and K (K-major) from 128-byte-swizzled shared memory, O += P V takes P from
// registers and the V tile as an MN-major operand. cp.async double-buffers K and V; padded
// keys are zero-filled so P x V never meets garbage.
#pragma once

#include <cstdint>

#include "kernels/attention_params.h"
#include "kernels/flash_epilogue.cuh"
#include "kernels/flash_mainloop.cuh"
#include "kernels/tile_scheduler.cuh"
#include "kernels/wgmma_sm90.cuh"

namespace sparseplan::cuda {

template <typename Element_, int kHeadDim_, int kWarpGroups_, int kBlockN_>
struct Sm90Traits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarpGroups = kWarpGroups_;
  static constexpr int kMTiles = 1;  // per warp: 16 rows of its warpgroup's 64
  static constexpr int kWarps = 4 * kWarpGroups;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 64 * kWarpGroups;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kNTiles = kBlockN / 8;
  static constexpr int kDTiles = kHeadDim / 8;
  static constexpr int kChunksPerRow = kHeadDim / 8;
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKBytes = kBlockN * kRowBytes;
  static constexpr int kSmemBytes = kQBytes + 4 * kKBytes;  // Q, two K and two V stages
  static_assert(kBlockN == 64 || kBlockN == 128, "key chunks of 64 or 128");
  static_assert(kQBytes % 1024 == 0 && kKBytes % 1024 == 0, "swizzle atoms are 1024 bytes");

  // The epilogue's staging layout (see FlashTraits::offset).
  __host__ __device__ static constexpr uint32_t offset(int row, int chunk) {
    return uint32_t(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
  }
  // A [rows x cols] tile as cols / 64 column blocks of [rows x 64] with the 128-byte swizzle.
  template <int kRows>
  __host__ __device__ static constexpr uint32_t sw128(int row, int chunk) {
    return uint32_t((chunk >> 3) * kRows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
  }
};

// Copies a [kRows x kCols] tile (row i at src + i * row_stride) into the 128-byte-swizzled
// layout; rows at or past `valid` are zero-filled.
template <typename Traits, int kRows, int kCols>
__device__ __forceinline__ void load_tile_sw128(uint32_t smem, const typename Traits::Element* src,
                                                int64_t row_stride, int valid) {
  constexpr int kChunksPerRow = kCols / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % Traits::kThreads == 0, "tile chunks must divide among the threads");
#pragma unroll
  for (int i = 0; i < kChunks / Traits::kThreads; ++i) {
    const int idx = i * Traits::kThreads + threadIdx.x;
    const int row = idx / kChunksPerRow;
    const int chunk = idx % kChunksPerRow;
    const bool ok = row < valid;
    const typename Traits::Element* g = src + (ok ? row * row_stride + chunk * 8 : 0);
    sm80::cp_async_16(smem + Traits::template sw128<kRows>(row, chunk), g, ok);
  }
}

template <typename Traits, typename Chunks>
__device__ __forceinline__ void attention_mainloop_sm90(
    uint8_t* smem, const typename Traits::Element* q, int64_t q_row_stride, int q_valid,
    const typename Traits::Element* k, int64_t k_row_stride, const typename Traits::Element* v,
    int64_t v_row_stride, const Chunks& chunks, float scale_log2, AttentionState<Traits>& st) {
  using Element = typename Traits::Element;
  using MmaS = sm90::Wgmma<Element, Traits::kBlockN>;
  using MmaO = sm90::Wgmma<Element, Traits::kHeadDim>;
  using Pack = sm80::Mma<Element>;
  constexpr int kD = Traits::kHeadDim, kN = Traits::kBlockN;
  const int lane = threadIdx.x % 32;
  const int group = threadIdx.x / 128;
  const uint32_t sQ = sm80::smem_addr(smem);
  const uint32_t sK0 = sQ + Traits::kQBytes;
  const uint32_t sV0 = sK0 + 2 * Traits::kKBytes;
  st.init();
  const int n = chunks.count();

  load_tile_sw128<Traits, Traits::kBlockM, kD>(sQ, q, q_row_stride, q_valid);
  KeyChunk cur{0, 0};
  if (n > 0) {
    cur = chunks(0);
    load_tile_sw128<Traits, kN, kD>(sK0, k + int64_t(cur.key_start) * k_row_stride,
                                    k_row_stride, cur.valid);
  }
  sm80::cp_async_commit();
  if (n > 0)
    load_tile_sw128<Traits, kN, kD>(sV0, v + int64_t(cur.key_start) * v_row_stride, v_row_stride,
                                    cur.valid);
  sm80::cp_async_commit();

  // This warpgroup's 64 query rows start at row 64 * group of every Q column block.
  const uint32_t sQg = sQ + group * 64 * 128;
  for (int t = 0; t < n; ++t) {
    const int stage = t & 1;
    const uint32_t sK = sK0 + stage * Traits::kKBytes;
    const uint32_t sV = sV0 + stage * Traits::kKBytes;
    sm80::cp_async_wait<1>();
    sm90::fence_proxy_async();
    __syncthreads();
    const bool has_next = t + 1 < n;
    KeyChunk next{0, 0};
    if (has_next) {
      next = chunks(t + 1);
      load_tile_sw128<Traits, kN, kD>(sK0 + (stage ^ 1) * Traits::kKBytes,
                                      k + int64_t(next.key_start) * k_row_stride, k_row_stride,
                                      next.valid);
    }
    sm80::cp_async_commit();

    float S[1][Traits::kNTiles][4];
    float(&s)[kN / 2] = reinterpret_cast<float(&)[kN / 2]>(S);
    sm90::fence();
    MmaS::ss0(s, sm90::smem_desc(sQg), sm90::smem_desc(sK));
#pragma unroll
    for (int kk = 1; kk < kD / 16; ++kk) {
      const uint32_t col = kk >> 2;  // 64-element column block of head_dim
      const uint32_t in_atom = (kk & 3) * 32;
      MmaS::ss(s, sm90::smem_desc(sQg + col * Traits::kBlockM * 128 + in_atom),
               sm90::smem_desc(sK + col * kN * 128 + in_atom), 1);
    }
    sm90::commit();
    sm90::wait<0>();
    sm90::fence_operand(s);
    if (cur.valid < kN) mask_scores<Traits>(S, cur.valid, lane);
    st.softmax(S, scale_log2);

    sm80::cp_async_wait<1>();
    sm90::fence_proxy_async();
    __syncthreads();
    uint32_t a[kN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) {
      a[kk][0] = Pack::pack(S[0][2 * kk][0], S[0][2 * kk][1]);
      a[kk][1] = Pack::pack(S[0][2 * kk][2], S[0][2 * kk][3]);
      a[kk][2] = Pack::pack(S[0][2 * kk + 1][0], S[0][2 * kk + 1][1]);
      a[kk][3] = Pack::pack(S[0][2 * kk + 1][2], S[0][2 * kk + 1][3]);
    }
    float(&o)[kD / 2] = reinterpret_cast<float(&)[kD / 2]>(st.O);
    sm90::fence_operand(o);
    sm90::fence();
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk)  // 16 keys = 16 rows of the [keys x head_dim] tile
      MmaO::rs_t(o, a[kk], sm90::smem_desc(sV + kk * 16 * 128, kN * 128));
    sm90::commit();
    sm90::wait<0>();
    sm90::fence_operand(o);
    if (has_next)
      load_tile_sw128<Traits, kN, kD>(sV0 + (stage ^ 1) * Traits::kKBytes,
                                      v + int64_t(next.key_start) * v_row_stride, v_row_stride,
                                      next.valid);
    sm80::cp_async_commit();
    cur = next;
  }
  sm80::cp_async_wait<0>();
  __syncthreads();
}

// The 128-byte swizzle is a function of address bits, so tiles must start 1024-byte aligned;
// launches ask for 1 KB more dynamic shared memory than the tiles need.
__device__ __forceinline__ uint8_t* align_1024(uint8_t* p) {
  const uint32_t addr = sm80::smem_addr(p);
  return p + ((1024 - (addr & 1023)) & 1023);
}

template <typename Traits, typename Chunks>
__device__ __forceinline__ void attention_tile_sm90(uint8_t* smem, const AttentionParams& p, int b,
                                                    int h, int q_tile, const Chunks& chunks) {
  using Element = typename Traits::Element;
  const int kvh = h / (p.heads / p.kv_heads);
  const int q0 = q_tile * Traits::kBlockM;
  const int q_valid = min(Traits::kBlockM, p.q_len - q0);
  const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                     h * p.q_head_stride + int64_t(q0) * p.q_row_stride;
  const Element* k = static_cast<const Element*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride;
  const Element* v = static_cast<const Element*>(p.v) + b * p.v_batch_stride + kvh * p.v_head_stride;
  Element* out = static_cast<Element*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride +
                 int64_t(q0) * p.o_row_stride;
  float* lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len + q0;
  constexpr float kLog2e = 1.4426950408889634f;
  AttentionState<Traits> st;
  attention_mainloop_sm90<Traits>(smem, q, p.q_row_stride, q_valid, k, p.k_row_stride, v,
                                  p.v_row_stride, chunks, p.scale * kLog2e, st);
  attention_epilogue<Traits>(smem, st, out, p.o_row_stride, lse, q_valid);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    dense_attention_sm90_kernel(AttentionParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  const DenseChunks<Traits::kBlockN> chunks{p.kv_len, p.block_k, p.kv_block_valid};
  attention_tile_sm90<Traits>(smem, p, blockIdx.z, blockIdx.y, blockIdx.x, chunks);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    block_sparse_attention_sm90_kernel(AttentionParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  __shared__ int s_item;
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  for (;;) {
    const int item = next_work(p.work_counter, p.work_list, p.num_work, &s_item);
    if (item < 0) break;
    const WorkItem w = decode_work(item, nqb);
    const int32_t* offsets = p.row_offsets + int64_t(w.bh) * (nqb + 1);
    const int begin = __ldg(offsets + w.qb);
    const CsrChunks<Traits::kBlockN> chunks{p.col_indices + begin,
                                            __ldg(offsets + w.qb + 1) - begin,
                                            p.block_k / Traits::kBlockN,
                                            p.block_k,
                                            p.kv_len,
                                            (p.kv_len + p.block_k - 1) / p.block_k,
                                            p.kv_block_valid};
    attention_tile_sm90<Traits>(smem, p, w.bh / p.heads, w.bh % p.heads, w.qb, chunks);
    __syncthreads();
  }
}

}  // namespace sparseplan::cuda
