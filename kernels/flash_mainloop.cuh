// The FlashAttention-2 main loop shared by dense and block-sparse attention and block mass:
// cp.async tile loads into swizzled shared memory, S = Q K^T with ldmatrix + mma.sync,
// online softmax in registers, O += P V. One CTA owns one query tile and walks a list of
// key chunks that a KeyChunk source (dense or CSR) describes.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/flash_traits.h"
#include "kernels/mma_sm80.cuh"

namespace sparseplan::cuda {

// One key chunk: first key and how many of its leading keys exist (the rest are masked).
struct KeyChunk {
  int key_start;
  int valid;
  // Stages of two 64-key blocks (paired tiles): the second block's first key and real keys
  // (valid then counts the first block's).
  int second_start = 0;
  int second_valid = 0;
};

// Dense attention: every key, in kChunk-key chunks; key blocks of block_k only matter for
// kv_block_valid.
template <int kChunk>
struct DenseChunks {
  int kv_len;
  int block_k;
  const int32_t* kv_block_valid;
  __device__ int count() const { return (kv_len + kChunk - 1) / kChunk; }
  __device__ KeyChunk operator()(int t) const {
    const int start = t * kChunk;
    int valid = min(kChunk, kv_len - start);
    if (kv_block_valid != nullptr) {
      const int kb = start / block_k;
      valid = min(valid, kv_block_valid[kb] - (start - kb * block_k));
    }
    return {start, max(valid, 0)};
  }
};

// Block-sparse attention: the key blocks of one CSR row, each split into block_k / kChunk chunks.
template <int kChunk>
struct CsrChunks {
  const int32_t* cols;  // this row's sorted key blocks
  int nnz;
  int chunks_per_block;  // block_k / kChunk
  int block_k;
  int kv_len;
  int num_k_blocks;
  const int32_t* kv_block_valid;
  __device__ int count() const { return nnz * chunks_per_block; }
  __device__ KeyChunk operator()(int t) const {
    const int kb = __ldg(cols + t / chunks_per_block);
    if (kb < 0 || kb >= num_k_blocks) return {0, 0};  // a bad column attends nothing
    const int sub = (t % chunks_per_block) * kChunk;
    const int start = kb * block_k + sub;
    int valid = min(kChunk, kv_len - start);
    if (kv_block_valid != nullptr) valid = min(valid, __ldg(kv_block_valid + kb) - sub);
    return {start, max(valid, 0)};
  }
};

// Copies rows [0, rows) of a tile (row i at src + i * row_stride) into swizzled shared memory;
// rows at or past `valid` are zero-filled so masked keys can never inject NaN through P x V.
template <typename Traits, int kRows>
__device__ __forceinline__ void load_tile(uint32_t smem, const typename Traits::Element* src,
                                          int64_t row_stride, int valid) {
  constexpr int kChunks = kRows * Traits::kChunksPerRow;
  static_assert(kChunks % Traits::kThreads == 0, "tile chunks must divide among the threads");
#pragma unroll
  for (int i = 0; i < kChunks / Traits::kThreads; ++i) {
    const int idx = i * Traits::kThreads + threadIdx.x;
    const int row = idx / Traits::kChunksPerRow;
    const int chunk = idx % Traits::kChunksPerRow;
    const bool ok = row < valid;
    const typename Traits::Element* g = src + (ok ? row * row_stride + chunk * 8 : 0);
    sm80::cp_async_16(smem + Traits::offset(row, chunk), g, ok);
  }
}

// S[kMTiles][kNTiles][4] = Q K^T for this warp's rows and the kBlockN keys in sK.
template <typename Traits>
__device__ __forceinline__ void compute_scores(uint32_t sQ, uint32_t sK, int warp, int lane,
                                               float (&S)[Traits::kMTiles][Traits::kNTiles][4]) {
  using Mma = sm80::Mma<typename Traits::Element>;
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) S[mt][nt][i] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < Traits::kKSteps; ++kk) {
    uint32_t a[Traits::kMTiles][4];
#pragma unroll
    for (int mt = 0; mt < Traits::kMTiles; ++mt) {
      const int row = (warp * Traits::kMTiles + mt) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
      sm80::ldmatrix_x4(sQ + Traits::offset(row, kk * 2 + (lane >> 4)), a[mt][0], a[mt][1],
                        a[mt][2], a[mt][3]);
    }
#pragma unroll
    for (int np = 0; np < Traits::kNTiles / 2; ++np) {
      uint32_t b0, b1, b2, b3;
      const int row = np * 16 + (lane & 7) + (lane >> 4) * 8;
      sm80::ldmatrix_x4(sK + Traits::offset(row, kk * 2 + ((lane >> 3) & 1)), b0, b1, b2, b3);
#pragma unroll
      for (int mt = 0; mt < Traits::kMTiles; ++mt) {
        Mma::run(S[mt][2 * np], a[mt], b0, b1);
        Mma::run(S[mt][2 * np + 1], a[mt], b2, b3);
      }
    }
  }
}

// Sets the scores of keys at or past `valid` in the chunk to -inf.
template <typename Traits>
__device__ __forceinline__ void mask_scores(float (&S)[Traits::kMTiles][Traits::kNTiles][4], int valid,
                                            int lane) {
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int col = nt * 8 + (lane & 3) * 2 + i;
        if (col >= valid) {
          S[mt][nt][i] = -INFINITY;
          S[mt][nt][i + 2] = -INFINITY;
        }
      }
}

template <typename Traits>
struct AttentionState {
  float O[Traits::kMTiles][Traits::kDTiles][4];
  float m[Traits::kMTiles][2];  // running max of the log2-scaled scores per row
  float l[Traits::kMTiles][2];  // running sum (this thread's columns only)

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int mt = 0; mt < Traits::kMTiles; ++mt) {
#pragma unroll
      for (int dt = 0; dt < Traits::kDTiles; ++dt)
#pragma unroll
        for (int i = 0; i < 4; ++i) O[mt][dt][i] = 0.0f;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        m[mt][r] = -INFINITY;
        l[mt][r] = 0.0f;
      }
    }
  }

  // Online softmax: rescales O and l by the new row max and turns S into P (unnormalized).
  __device__ __forceinline__ void softmax(float (&S)[Traits::kMTiles][Traits::kNTiles][4], float scale_log2) {
#pragma unroll
    for (int mt = 0; mt < Traits::kMTiles; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < Traits::kNTiles; ++nt) mx = fmaxf(mx, fmaxf(S[mt][nt][2 * r], S[mt][nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[mt][r], mx * scale_log2);
        // A row that has seen only masked keys keeps max -inf; use 0 so exp2 gives 0, not NaN.
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f(m[mt][r] - m_use);
        m[mt][r] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            const float p = exp2f(fmaf(S[mt][nt][2 * r + i], scale_log2, -m_use));
            S[mt][nt][2 * r + i] = p;
            sum += p;
          }
        l[mt][r] = l[mt][r] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < Traits::kDTiles; ++dt) {
          O[mt][dt][2 * r] *= alpha;
          O[mt][dt][2 * r + 1] *= alpha;
        }
      }
  }

  // O += P V for the kBlockN keys in sV.
  __device__ __forceinline__ void accumulate_pv(const float (&P)[Traits::kMTiles][Traits::kNTiles][4],
                                                uint32_t sV, int lane) {
    using Mma = sm80::Mma<typename Traits::Element>;
#pragma unroll
    for (int kk = 0; kk < Traits::kBlockN / 16; ++kk) {
      uint32_t a[Traits::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < Traits::kMTiles; ++mt) {
        a[mt][0] = Mma::pack(P[mt][2 * kk][0], P[mt][2 * kk][1]);
        a[mt][1] = Mma::pack(P[mt][2 * kk][2], P[mt][2 * kk][3]);
        a[mt][2] = Mma::pack(P[mt][2 * kk + 1][0], P[mt][2 * kk + 1][1]);
        a[mt][3] = Mma::pack(P[mt][2 * kk + 1][2], P[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < Traits::kDTiles / 2; ++dp) {
        uint32_t b0, b1, b2, b3;
        const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        sm80::ldmatrix_x4_trans(sV + Traits::offset(row, dp * 2 + (lane >> 4)), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < Traits::kMTiles; ++mt) {
          Mma::run(O[mt][2 * dp], a[mt], b0, b1);
          Mma::run(O[mt][2 * dp + 1], a[mt], b2, b3);
        }
      }
    }
  }
};

// Runs one query tile over all chunks of `chunks`; Q rows past q_valid are zero. Leaves the
// CTA synchronized with every cp.async complete, so the caller may reuse shared memory.
template <typename Traits, typename Chunks>
__device__ __forceinline__ void attention_mainloop(
    uint8_t* smem, const typename Traits::Element* q, int64_t q_row_stride, int q_valid,
    const typename Traits::Element* k, int64_t k_row_stride, const typename Traits::Element* v,
    int64_t v_row_stride, const Chunks& chunks, float scale_log2, AttentionState<Traits>& st) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const uint32_t sQ = sm80::smem_addr(smem);
  const uint32_t sK0 = sQ + Traits::kQBytes;
  const uint32_t sV0 = sK0 + 2 * Traits::kKVTileBytes;
  st.init();
  const int n = chunks.count();

  load_tile<Traits, Traits::kBlockM>(sQ, q, q_row_stride, q_valid);
  KeyChunk cur{0, 0};
  if (n > 0) {
    cur = chunks(0);
    load_tile<Traits, Traits::kBlockN>(sK0, k + int64_t(cur.key_start) * k_row_stride,
                                       k_row_stride, cur.valid);
  }
  sm80::cp_async_commit();
  if (n > 0)
    load_tile<Traits, Traits::kBlockN>(sV0, v + int64_t(cur.key_start) * v_row_stride,
                                       v_row_stride, cur.valid);
  sm80::cp_async_commit();

  for (int t = 0; t < n; ++t) {
    const int stage = t & 1;
    const uint32_t sK = sK0 + stage * Traits::kKVTileBytes;
    const uint32_t sV = sV0 + stage * Traits::kKVTileBytes;
    sm80::cp_async_wait<1>();  // Q and K[t] have landed; V[t] may still be in flight
    __syncthreads();
    const bool has_next = t + 1 < n;
    KeyChunk next{0, 0};
    if (has_next) {
      next = chunks(t + 1);
      load_tile<Traits, Traits::kBlockN>(sK0 + (stage ^ 1) * Traits::kKVTileBytes,
                                         k + int64_t(next.key_start) * k_row_stride,
                                         k_row_stride, next.valid);
    }
    sm80::cp_async_commit();

    float S[Traits::kMTiles][Traits::kNTiles][4];
    compute_scores<Traits>(sQ, sK, warp, lane, S);
    if (cur.valid < Traits::kBlockN) mask_scores<Traits>(S, cur.valid, lane);
    st.softmax(S, scale_log2);

    sm80::cp_async_wait<1>();  // V[t] has landed; K[t+1] may still be in flight
    __syncthreads();
    st.accumulate_pv(S, sV, lane);
    if (has_next)
      load_tile<Traits, Traits::kBlockN>(sV0 + (stage ^ 1) * Traits::kKVTileBytes,
                                         v + int64_t(next.key_start) * v_row_stride,
                                         v_row_stride, next.valid);
    sm80::cp_async_commit();
    cur = next;
  }
  sm80::cp_async_wait<0>();
  __syncthreads();
}

}  // namespace sparseplan::cuda
