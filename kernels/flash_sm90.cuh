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
    uint8_t* smem, const typename Traits::Element* k, int64_t k_row_stride, const typename Traits::Element* v,
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
  // The caller issued the first two cp.async groups: Q with the first K chunk, then the first
  // V chunk (issue_q_k0, issue_v0).
  KeyChunk cur = n > 0 ? chunks(0) : KeyChunk{0, 0};

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

// Global pointers of one (batch, head, query tile).
template <typename Traits>
struct TileView {
  using Element = typename Traits::Element;
  const Element *q, *k, *v;
  Element* out;
  float* lse;
  int q_valid;

  __device__ TileView(const AttentionParams& p, int b, int h, int q_tile) {
    const int kvh = h / (p.heads / p.kv_heads);
    const int q0 = q_tile * Traits::kBlockM;
    q_valid = min(Traits::kBlockM, p.q_len - q0);
    q = static_cast<const Element*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride +
        int64_t(q0) * p.q_row_stride;
    k = static_cast<const Element*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride;
    v = static_cast<const Element*>(p.v) + b * p.v_batch_stride + kvh * p.v_head_stride;
    out = static_cast<Element*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride +
          int64_t(q0) * p.o_row_stride;
    lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len + q0;
  }
};

// Shared memory: Q, two K stages, two V stages. The epilogue stages O in the V stages, so the
// next tile's Q and first K chunk can load while this tile's output is written.
template <typename Traits, typename Chunks>
__device__ __forceinline__ void issue_q_k0(uint8_t* smem, const AttentionParams& p,
                                           const TileView<Traits>& t, const Chunks& chunks) {
  const uint32_t sQ = sm80::smem_addr(smem);
  load_tile_sw128<Traits, Traits::kBlockM, Traits::kHeadDim>(sQ, t.q, p.q_row_stride, t.q_valid);
  if (chunks.count() > 0) {
    const KeyChunk c = chunks(0);
    load_tile_sw128<Traits, Traits::kBlockN, Traits::kHeadDim>(
        sQ + Traits::kQBytes, t.k + int64_t(c.key_start) * p.k_row_stride, p.k_row_stride,
        c.valid);
  }
  sm80::cp_async_commit();
}

template <typename Traits, typename Chunks>
__device__ __forceinline__ void issue_v0(uint8_t* smem, const AttentionParams& p,
                                         const TileView<Traits>& t, const Chunks& chunks) {
  if (chunks.count() > 0) {
    const KeyChunk c = chunks(0);
    load_tile_sw128<Traits, Traits::kBlockN, Traits::kHeadDim>(
        sm80::smem_addr(smem) + Traits::kQBytes + 2 * Traits::kKBytes,
        t.v + int64_t(c.key_start) * p.v_row_stride, p.v_row_stride, c.valid);
  }
  sm80::cp_async_commit();
}

template <typename Traits, typename Chunks>
__device__ __forceinline__ void attention_tile_sm90(uint8_t* smem, const AttentionParams& p,
                                                    const TileView<Traits>& t,
                                                    const Chunks& chunks) {
  constexpr float kLog2e = 1.4426950408889634f;
  AttentionState<Traits> st;
  attention_mainloop_sm90<Traits>(smem, t.k, p.k_row_stride, t.v, p.v_row_stride, chunks,
                                  p.scale * kLog2e, st);
  static_assert(2 * Traits::kKBytes >= Traits::kQBytes, "O staging fits in the V stages");
  attention_epilogue<Traits>(smem + Traits::kQBytes + 2 * Traits::kKBytes, st, t.out,
                             p.o_row_stride, t.lse, t.q_valid);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    dense_attention_sm90_kernel(AttentionParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  const DenseChunks<Traits::kBlockN> chunks{p.kv_len, p.block_k, p.kv_block_valid};
  const TileView<Traits> t(p, blockIdx.z, blockIdx.y, blockIdx.x);
  issue_q_k0<Traits>(smem, p, t, chunks);
  issue_v0<Traits>(smem, p, t, chunks);
  attention_tile_sm90<Traits>(smem, p, t, chunks);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    block_sparse_attention_sm90_kernel(AttentionParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  __shared__ int s_item;
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  auto row_chunks = [&](const WorkItem& w) {
    const int32_t* offsets = p.row_offsets + int64_t(w.bh) * (nqb + 1);
    const int begin = __ldg(offsets + w.qb);
    return CsrChunks<Traits::kBlockN>{p.col_indices + begin,   __ldg(offsets + w.qb + 1) - begin,
                                      p.block_k / Traits::kBlockN, p.block_k,
                                      p.kv_len,                  nkb,
                                      p.kv_block_valid};
  };
  int item = next_work(p.work_counter, p.work_list, p.num_work, &s_item);
  if (item >= 0) {
    const WorkItem w = decode_work(item, nqb);
    issue_q_k0<Traits>(smem, p, TileView<Traits>(p, w.bh / p.heads, w.bh % p.heads, w.qb),
                       row_chunks(w));
  }
  while (item >= 0) {
    const WorkItem w = decode_work(item, nqb);
    const TileView<Traits> t(p, w.bh / p.heads, w.bh % p.heads, w.qb);
    const auto chunks = row_chunks(w);
    issue_v0<Traits>(smem, p, t, chunks);
    constexpr float kLog2e = 1.4426950408889634f;
    AttentionState<Traits> st;
    attention_mainloop_sm90<Traits>(smem, t.k, p.k_row_stride, t.v, p.v_row_stride, chunks,
                                    p.scale * kLog2e, st);
    // Draw the next item and start its Q and first K chunk before this item's epilogue, which
    // stages O in the V stages (the mainloop left every stage idle and the CTA synchronized).
    __syncthreads();
    const int next = next_work(p.work_counter, p.work_list, p.num_work, &s_item);
    if (next >= 0) {
      const WorkItem nw = decode_work(next, nqb);
      issue_q_k0<Traits>(smem, p, TileView<Traits>(p, nw.bh / p.heads, nw.bh % p.heads, nw.qb),
                         row_chunks(nw));
    }
    attention_epilogue<Traits>(smem + Traits::kQBytes + 2 * Traits::kKBytes, st, t.out,
                               p.o_row_stride, t.lse, t.q_valid);
    __syncthreads();
    item = next;
  }
}

}  // namespace sparseplan::cuda
