// Consumer warpgroups of the warp-specialized attention kernel. Each owns 64 query rows and
// overlaps its two products across key chunks (FlashAttention-3's intra-warpgroup overlap):
// S(j) = Q K(j)^T is issued, O is rescaled for P(j-1) while it runs, O += P(j-1) V(j-1) is
// issued, and the softmax of S(j) runs while the tensor cores work on P(j-1) V(j-1).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/fast_exp2.cuh"
#include "kernels/flash_ws_scheduler.cuh"
#include "kernels/mma_sm80.cuh"
#include "kernels/sm90_sync.cuh"
#include "kernels/wgmma_sm90.cuh"

namespace sparseplan::cuda {

// Online softmax over one warp's 16 rows (two per thread) of a 64-row block; scores are in
// wgmma accumulator order: S[n8 tile][row r: 2r, 2r+1].
template <typename Traits>
struct WsSoftmax {
  float m[2];  // running max of the log2-scaled scores
  float l[2];  // running sum over this thread's columns

  __device__ __forceinline__ void init() {
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
  }

  // Turns S (its first kTiles n8 tiles) into unnormalized probabilities and returns the factor
  // by which O must shrink.
  template <int kTiles = Traits::kNTiles>
  __device__ __forceinline__ void step(float (&S)[Traits::kNTiles][4], float scale_log2,
                                       float (&alpha)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kTiles; ++nt)
        mx = fmaxf(mx, fmaxf(S[nt][2 * r], S[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx * scale_log2);
      // A row that has seen only masked keys keeps max -inf; use 0 so exp2 gives 0, not NaN.
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      alpha[r] = fast_exp2(m[r] - m_use);
      m[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kTiles; ++nt)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const float e = fast_exp2(fmaf(S[nt][2 * r + i], scale_log2, -m_use));
          S[nt][2 * r + i] = e;
          sum += e;
        }
      l[r] = l[r] * alpha[r] + sum;
    }
  }
};

// The chunk's valid-key count (see WsBarriers): one atomic read per warp, broadcast. Read while
// the stage's Q K^T runs; the warp's release_k_stage after it lets the producer rewrite it.
__device__ __forceinline__ int read_chunk_valid(int* slot) {
  int valid = 0;
  if (threadIdx.x % 32 == 0) valid = atomicAdd(slot, 0);
  return __shfl_sync(0xffffffffu, valid, 0);
}
__device__ __forceinline__ void release_k_stage(uint64_t* k_empty) {
  if (threadIdx.x % 32 == 0) sm90::mbarrier_arrive(k_empty);
}

template <typename Traits, int kTiles = Traits::kNTiles>
__device__ __forceinline__ void mask_chunk(float (&S)[Traits::kNTiles][4], int valid) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt)
#pragma unroll
    for (int i = 0; i < 2; ++i)
      if (nt * 8 + (lane & 3) * 2 + i >= valid) {
        S[nt][i] = -INFINITY;
        S[nt][i + 2] = -INFINITY;
      }
}

// S = Q K^T over kKeys keys from sK (a stage's first kBlockN, or one 64-key block of it).
template <typename Traits, int kKeys = Traits::kBlockN>
__device__ __forceinline__ void issue_scores(float (&S)[Traits::kNTiles][4], uint32_t sQg, uint32_t sK) {
  using Mma = sm90::Wgmma<typename Traits::Element, kKeys>;
  float(&s)[kKeys / 2] = reinterpret_cast<float(&)[kKeys / 2]>(S);
  sm90::fence();
  Mma::ss0(s, sm90::smem_desc(sQg), sm90::smem_desc(sK));
#pragma unroll
  for (int kk = 1; kk < Traits::kHeadDim / 16; ++kk) {
    const uint32_t col = kk >> 2;  // 64-element column block of head_dim
    const uint32_t in_atom = (kk & 3) * 32;
    Mma::ss(s, sm90::smem_desc(sQg + col * Traits::kBlockM * 128 + in_atom),
            sm90::smem_desc(sK + col * Traits::kBlockN * 128 + in_atom), 1);
  }
  sm90::commit();
}

// O += P V over kKeys keys of a V stage from sV (its first kBlockN, or one 64-key block).
template <typename Traits, int kKeys = Traits::kBlockN>
__device__ __forceinline__ void issue_pv(float (&O)[Traits::kDTiles][4],
                                         const uint32_t (&P)[Traits::kBlockN / 16][4], uint32_t sV) {
  using Mma = sm90::Wgmma<typename Traits::Element, Traits::kHeadDim>;
  float(&o)[Traits::kHeadDim / 2] = reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O);
  sm90::fence_operand(o);
  sm90::fence();
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk)  // 16 keys = 16 rows of the V tile
    Mma::rs_t(o, P[kk], sm90::smem_desc(sV + kk * 16 * 128, Traits::kBlockN * 128));
  sm90::commit();
}

template <typename Traits, int kKeys = Traits::kBlockN>
__device__ __forceinline__ void pack_probabilities(const float (&S)[Traits::kNTiles][4],
                                                   uint32_t (&P)[Traits::kBlockN / 16][4]) {
  using Pack = sm80::Mma<typename Traits::Element>;
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) {
    P[kk][0] = Pack::pack(S[2 * kk][0], S[2 * kk][1]);
    P[kk][1] = Pack::pack(S[2 * kk][2], S[2 * kk][3]);
    P[kk][2] = Pack::pack(S[2 * kk + 1][0], S[2 * kk + 1][1]);
    P[kk][3] = Pack::pack(S[2 * kk + 1][2], S[2 * kk + 1][3]);
  }
}

template <typename Traits>
__device__ __forceinline__ void rescale(float (&O)[Traits::kDTiles][4], const float (&alpha)[2]) {
#pragma unroll
  for (int dt = 0; dt < Traits::kDTiles; ++dt) {
    O[dt][0] *= alpha[0];
    O[dt][1] *= alpha[0];
    O[dt][2] *= alpha[1];
    O[dt][3] *= alpha[1];
  }
}

// Ping-pong between two consumer warpgroups (FlashAttention-3): a warpgroup issues its GEMMs
// only after the other has issued its own, so one's softmax runs while the other's GEMMs keep
// the tensor cores busy. Barrier 3 + g is warpgroup g's turn; the other warpgroup arrives on
// it after issuing.
template <bool kOn>
struct PingPong {
  int g;
  __device__ __forceinline__ void start() const {
    if (kOn && g == 0) sm90::named_barrier_arrive(3, 256);
  }
  __device__ __forceinline__ void wait_turn() const {
    if (kOn) sm90::named_barrier_sync(3 + g, 256);
  }
  __device__ __forceinline__ void pass_turn() const {
    if (kOn) sm90::named_barrier_arrive(3 + (g ^ 1), 256);
  }
};

// Normalizes O, writes the LSE, stages O in this warpgroup's rows of the Q stage (its last
// Q K^T has completed) and stores it by TMA. The Q stage stays held until the store has read
// it (released at the next tile, see consume).
// With the fused tile order (kFused) the rows go to their tokens in model order:
// the warpgroup's 64 rows lie in one block, whose tile's tokens are written (16 bytes a thread,
// a row's head_dim contiguous) and the rest dropped; the Q stage is free once all have read it.
template <typename Traits, bool kPaired, bool kFused>
__device__ __forceinline__ void consumer_epilogue(const WsParams& wp, const WsTile& t, int g,
                                                  uint8_t* sQ, float (&O)[Traits::kDTiles][4],
                                                  const WsSoftmax<Traits>& sm) {
  const AttentionParams& p = wp.a;
  using Pack = sm80::Mma<typename Traits::Element>;
  constexpr float kLn2 = 0.69314718055994530942f;
  const int tid = threadIdx.x % 128;
  const int lane = tid % 32, warp = tid / 32;
  const int q0 = t.q_tile * Traits::kBlockM;
  constexpr bool fused = kFused;
  // This warpgroup's rows: rows [first, first + 64) of tile order (a pair's: its own block,
  // wherever the pair order put it), in the fused order tokens [first % block_q, ...) of the
  // block's tile.
  const int block = kPaired ? pair_query_block(p, t, g) : 0;
  const int first = kPaired ? (block < 0 ? p.q_len : block * 64) : q0 + g * 64;
  const int in_block = first % p.block_q;
  // (A pair's second block past an odd count has no rows; nor, in the fused order, has the
  // second half of a 128-token block whose tile is smaller.)
  TileSpan span{};
  if (fused && first < p.q_len)
    span = unpack_tile(p.video, __ldg(wp.video.tiles + first / p.block_q));
  const int q_valid = first >= p.q_len ? 0
                      : fused         ? min(64, span.tokens() - in_block)
                                      : min(64, p.q_len - first);
  const int64_t lse_len = fused ? int64_t(p.video.frames) * p.video.height * p.video.width
                                : int64_t(p.q_len);
  float* lse = p.lse + (int64_t(t.b) * p.heads + t.h) * lse_len;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = sm.l[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int row = warp * 16 + (lane >> 2) + r * 8;  // of the warpgroup's 64
    if ((lane & 3) == 0 && row < q_valid)
      lse[fused ? span.token(p.video, in_block + row) : first + row] =
          l > 0.0f ? sm.m[r] * kLn2 + logf(l) : -INFINITY;
#pragma unroll
    for (int dt = 0; dt < Traits::kDTiles; ++dt)
      *reinterpret_cast<uint32_t*>(sQ + Traits::template sw128<Traits::kBlockM>(g * 64 + row, dt) +
                                   (lane & 3) * 4) = Pack::pack(O[dt][2 * r] * inv, O[dt][2 * r + 1] * inv);
  }
  if (fused) {
    sm90::named_barrier_sync(1 + g, 128);
    constexpr int kChunks = Traits::kHeadDim / 8;  // 16-byte pieces of a row
    using Element = typename Traits::Element;
    Element* out = static_cast<Element*>(p.out) + int64_t(t.b) * p.o_batch_stride +
                   int64_t(t.h) * p.o_head_stride;
    for (int idx = tid; idx < q_valid * kChunks; idx += 128) {
      const int row = idx / kChunks, chunk = idx % kChunks;
      const uint4 val = *reinterpret_cast<const uint4*>(
          sQ + Traits::template sw128<Traits::kBlockM>(g * 64 + row, chunk));
      const int64_t token = span.token(p.video, in_block + row);
      *reinterpret_cast<uint4*>(out + token * p.o_row_stride + chunk * 8) = val;
    }
    sm90::named_barrier_sync(1 + g, 128);
    return;
  }
  sm90::fence_proxy_async();  // the TMA store reads through the async proxy
  sm90::named_barrier_sync(1 + g, 128);
  if (tid == 0 && q_valid > 0) {
    const uint32_t rows = sm90::smem_u32(sQ) + g * 64 * 128;
#pragma unroll
    for (int c = 0; c < Traits::kHeadDim / 64; ++c)
      sm90::tma_store_4d(&wp.tma_o, rows + c * Traits::kBlockM * 128, c * 64, first, t.h, t.b);
    sm90::bulk_commit();
  }
}

// Sets the scores of a 128-key stage of two 64-key blocks to -inf outside the first `to0`
// keys of the first block and the first `to1` of the second.
template <typename Traits>
__device__ __forceinline__ void mask_halves(float (&S)[Traits::kNTiles][4], int to0, int to1) {
  constexpr int kHalf = Traits::kNTiles / 2;  // n8 tiles of one block
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int col = (nt % kHalf) * 8 + (lane & 3) * 2 + i;
      if (col >= (nt < kHalf ? to0 : to1)) {
        S[nt][i] = -INFINITY;
        S[nt][i + 2] = -INFINITY;
      }
    }
}

// Masks a chunk's scores outside the keys this warpgroup attends: past the valid keys, and for
// a paired tile (kPaired; members from PairChunks::members, valid as the producer packs it)
// the keys its query block does not list. Every chunk of a paired tile runs through both
// warpgroups' GEMMs (a chunk their block does not list entirely masked: it adds nothing),
// because any GEMM under a condition made ptxas serialize every wgmma of the kernel
// (C7514-C7519: it tracks wgmma completion without regard to conditions).
template <typename Traits, bool kPaired>
__device__ __forceinline__ void mask_unattended(float (&S)[Traits::kNTiles][4], int members,
                                                int g, int valid) {
  if constexpr (kPaired && Traits::kBlockN == 128) {
    if (valid & kSecondBlockValid) {  // two 64-key blocks
      const int to0 = (members >> g) & 1 ? valid & 0xff : 0;
      const int to1 = (members >> (2 + g)) & 1 ? (valid >> 8) & 0xff : 0;
      if (to0 < 64 || to1 < 64) mask_halves<Traits>(S, to0, to1);
      return;
    }
  }
  if constexpr (kPaired) {
    if (!((members >> g) & 1)) valid = 0;
  }
  if (valid < Traits::kBlockN) mask_chunk<Traits>(S, valid);
}

// A split stage's scores (warpgroup g's block, the stage's g-th, in S's first half) masked
// past the block's valid keys, all of them where g's query block does not list it.
template <typename Traits>
__device__ __forceinline__ void mask_own_block(float (&S)[Traits::kNTiles][4], int members,
                                               int g, int valid) {
  const bool listed = (members >> (g == 0 ? 0 : 3)) & 1;
  const int to = !listed ? 0 : g == 0 ? valid & 0xff : (valid >> 8) & 0xff;
  if (to < 64) mask_chunk<Traits, Traits::kNTiles / 2>(S, to);
}

// A consumer warpgroup's tile start: O and the softmax cleared, the tile's Q awaited, and the
// Q stage of the tile before released once its O store has read it (see consumer_epilogue).
template <typename Traits>
__device__ __forceinline__ void start_tile(float (&O)[Traits::kDTiles][4], WsSoftmax<Traits>& sm,
                                           WsBarriers<Traits>& bar,
                                           const sm90::PipelineState<Traits::kQStages>& qs,
                                           int held_q, bool leader) {
#pragma unroll
  for (int dt = 0; dt < Traits::kDTiles; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) O[dt][e] = 0.0f;
  sm.init();
  sm90::mbarrier_wait(&bar.q_full[qs.stage], qs.phase);
  if (held_q >= 0 && leader) {
    sm90::bulk_wait_read();
    sm90::mbarrier_arrive(&bar.q_empty[held_q]);
  }
}

// kPaired: block-sparse over pairs of 64-row query blocks (WsSchedule), warpgroup g serving
// query block 2 pair + g.
template <typename Traits, bool kSparse, bool kPaired = false, bool kFused = false>
__device__ __forceinline__ void consume(const WsParams& wp, uint8_t* smem,
                                        WsBarriers<Traits>& bar, int g) {
  const AttentionParams& p = wp.a;
  const WsSchedule<Traits, kSparse, kPaired, kFused> schedule{p};
  constexpr float kLog2e = 1.4426950408889634f;
  const float scale_log2 = p.scale * kLog2e;
  const bool leader = threadIdx.x % 128 == 0;
  const uint32_t s_base = sm90::smem_u32(smem);
  const PingPong<Traits::kConsumers == 2> turn{g};
  auto sK = [&](int stage) { return s_base + Traits::kKOffset + stage * Traits::kKBytes; };
  auto sV = [&](int stage) { return s_base + Traits::kVOffset + stage * Traits::kKBytes; };
  // Paired tiles of two 64-key blocks a stage may run split stages (PairRows::split), where
  // warpgroup g computes the stage's g-th block alone: 64 rows into the stage's K and V.
  constexpr bool kSplit = kPaired && Traits::kBlockN == 128;
  const uint32_t own_block = uint32_t(g) * 64 * 128;
  sm90::PipelineState<Traits::kQStages> qs;
  sm90::PipelineState<Traits::kKStages> ks;
  sm90::PipelineState<Traits::kVStages> vs;  // the V stage of the chunk whose P V comes next
  int held_q = -1;  // Q stage the previous tile's O store may still be reading
  turn.start();
  WsItems<Traits, kSparse> items{p, bar, schedule.num_items()};
  for (int i = items.take(); i >= 0; i = items.take()) {
    const WsTile t = schedule.tile(i);
    const auto chunks = schedule.chunks(t);
    const int n = chunks.count();
    float O[Traits::kDTiles][4];
    WsSoftmax<Traits> sm;
    const uint32_t sQg = s_base + Traits::kQOffset + qs.stage * Traits::kQBytes + g * 64 * 128;
    start_tile<Traits>(O, sm, bar, qs, held_q, leader);
    if (n > 0) {
      float S[Traits::kNTiles][4];
      uint32_t P[Traits::kBlockN / 16][4];
      float alpha[2];
      int members = 0;  // a paired tile's chunk members, loaded ahead of their use
      // Stage j: S over its keys (kSplitS: this warpgroup's block of a split stage), while the
      // tensor cores run O += P V of stage j - 1 over kPv keys (0: none, the tile's first stage).
      const auto stage = [&](auto split_s, auto pv_keys) {
        constexpr bool kSplitS = decltype(split_s)::value;
        constexpr int kPv = decltype(pv_keys)::value;
        constexpr int kSKeys = kSplitS ? 64 : Traits::kBlockN;
        sm90::mbarrier_wait(&bar.k_full[ks.stage], ks.phase);
        turn.wait_turn();
        issue_scores<Traits, kSKeys>(S, sQg, sK(ks.stage) + (kSplitS ? own_block : 0u));
        if constexpr (kPv > 0) {
          rescale<Traits>(O, alpha);
          sm90::mbarrier_wait(&bar.v_full[vs.stage], vs.phase);
          issue_pv<Traits, kPv>(O, P, sV(vs.stage) + (kPv < Traits::kBlockN ? own_block : 0u));
        }
        turn.pass_turn();
        const int valid = read_chunk_valid(&bar.valid[ks.stage]);
        sm90::wait<(kPv > 0 ? 1 : 0)>();
        sm90::fence_operand(reinterpret_cast<float(&)[Traits::kBlockN / 2]>(S));
        release_k_stage(&bar.k_empty[ks.stage]);
        if constexpr (kSplitS) mask_own_block<Traits>(S, members, g, valid);
        else mask_unattended<Traits, kPaired>(S, members, g, valid);
        sm.template step<kSKeys / 8>(S, scale_log2, alpha);
        if constexpr (kPv > 0) {
          sm90::wait<0>();
          sm90::fence_operand(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O));
          if (leader) sm90::mbarrier_arrive(&bar.v_empty[vs.stage]);
          vs.advance();
        }
        pack_probabilities<Traits, kSKeys>(S, P);
        ks.advance();
      };
      const auto last_pv = [&](auto pv_keys) {
        constexpr int kPv = decltype(pv_keys)::value;
        rescale<Traits>(O, alpha);
        sm90::mbarrier_wait(&bar.v_full[vs.stage], vs.phase);
        issue_pv<Traits, kPv>(O, P, sV(vs.stage) + (kPv < Traits::kBlockN ? own_block : 0u));
        sm90::wait<0>();
        sm90::fence_operand(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O));
        if (leader) sm90::mbarrier_arrive(&bar.v_empty[vs.stage]);
        vs.advance();
      };
      using Whole = std::integral_constant<int, Traits::kBlockN>;
      using None = std::integral_constant<int, 0>;
      using Shared = std::false_type;
      if constexpr (kPaired) members = chunks.members(0);
      int j = 1;
      if constexpr (kSplit) {
        // The split stages lead (PairRows::split); each stage kind keeps its own unconditional
        // GEMMs (see mask_unattended), so the walk runs as up to four loops.
        using Half = std::integral_constant<int, 64>;
        const int split = chunks.split;
        if (split > 0) stage(std::true_type{}, None{});
        else stage(Shared{}, None{});
        for (; j < split; ++j) {
          members = chunks.members(j);
          stage(std::true_type{}, Half{});
        }
        if (split > 0 && j < n) {
          members = chunks.members(j++);
          stage(Shared{}, Half{});
        }
        for (; j < n; ++j) {
          members = chunks.members(j);
          stage(Shared{}, Whole{});
        }
        if (split == n) last_pv(Half{});
        else last_pv(Whole{});
      } else {
        stage(Shared{}, None{});
        for (; j < n; ++j) {
          if constexpr (kPaired) members = chunks.members(j);
          stage(Shared{}, Whole{});
        }
        last_pv(Whole{});
      }
    }
    consumer_epilogue<Traits, kPaired, kFused>(wp, t, g,
                                      smem + Traits::kQOffset + qs.stage * Traits::kQBytes, O, sm);
    held_q = qs.stage;
    qs.advance();
  }
  if (leader) sm90::bulk_wait();
}

}  // namespace sparseplan::cuda
