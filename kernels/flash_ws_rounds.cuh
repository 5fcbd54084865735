// The rounds kernel: paired 64-row query blocks over 64-key blocks, each consumer warpgroup
// computing in a round two key blocks that it picks (pair_rounds.h) from rings of single
// blocks: a 128-key stage's work, S as two m64n64 products and P V from two V blocks, so that
// no instruction depends on which blocks (a wgmma under a condition serializes them all, see
// mask_unattended). The producer's warp 0 loads Q and each union block's K in key order,
// warp 1 its V; a block read by one warpgroup only is released for the other by the producer.
#pragma once

#include <cstdint>

#include "kernels/flash_ws_consumer.cuh"
#include "kernels/flash_ws_producer.cuh"
#include "kernels/pair_rounds.h"

namespace sparseplan::cuda {

// Rings of kKSlots K blocks and kVSlots V blocks of 64 keys ([64 x kHeadDim], 64-column blocks
// swizzled) after the Q ring; WsBarriers has a K and a V stage per slot.
template <typename Element, int kHeadDim, int kKSlots, int kVSlots>
struct WsRoundsTraits : WsTraits<Element, kHeadDim, 2, 128, kKSlots, kVSlots> {
  using Base = WsTraits<Element, kHeadDim, 2, 128, kKSlots, kVSlots>;
  static constexpr int kSlotBytes = 64 * kHeadDim * 2;
  static constexpr int kVOffset = Base::kKOffset + kKSlots * kSlotBytes;
  static constexpr int kBarOffset = kVOffset + kVSlots * kSlotBytes;
  static constexpr int kRingSlots = kKSlots < kVSlots ? kKSlots : kVSlots;
};

// The slot of the pos-th block through a ring, and the parity of its fill.
template <int kSlots>
struct RingSlot {
  int slot;
  uint32_t phase;
  __device__ __forceinline__ explicit RingSlot(int pos)
      : slot(pos % kSlots), phase(uint32_t(pos / kSlots) & 1u) {}
};

// One key block into a slot: its tile in the fused order, else rows [start, start + 64).
template <typename Traits, bool kFused>
__device__ __forceinline__ void load_key_block(uint32_t smem, const WsVideo& video,
                                               const CUtensorMap* video_maps,
                                               const CUtensorMap* map, uint64_t* full,
                                               int2 tile, int start, int h, int b) {
  if constexpr (kFused) {
    const VideoBlocks blocks{{tile, int2{0, 0}}, 1};
    load_video_blocks<Traits, 64>(smem, video, video_maps, full, blocks, h, b);
  } else {
    load_tile_tma<Traits>(smem, map, full, Traits::kSlotBytes, 64, start, h, b);
  }
}

// Warps 0 (Q and K) and 1 (V) of the producer warpgroup. Per union block: wait for its slot,
// load it, and arrive on the slot's empty barrier for each warpgroup that will not read it (with
// own rounds, one whose query block does not list it), so that the slot frees when its readers
// are done. A V block with padded keys lands on v_landed; warp 1 zeroes the rows past them
// (P V must not meet what they held) before releasing it on v_full.
template <typename Traits, bool kFused>
__device__ __forceinline__ void produce_rounds(const WsParams& wp, uint8_t* smem,
                                               WsBarriers<Traits>& bar) {
  const AttentionParams& p = wp.a;
  const WsSchedule<Traits, true, true, kFused> schedule{p};
  const bool k_warp = threadIdx.x / 32 == 0;
  const bool leader = threadIdx.x % 32 == 0;
  const uint32_t s_base = sm90::smem_u32(smem);
  sm90::PipelineState<Traits::kQStages> qs;
  int pos = 0;                // blocks through this warp's ring
  uint32_t landed_phase = 0;  // parity of v_landed per slot
  WsItems<Traits, true> items{p, bar, schedule.num_items()};
  for (int i = k_warp ? items.draw() : items.take(); i >= 0;
       i = k_warp ? items.draw() : items.take()) {
    const WsTile t = schedule.tile(i);
    const int kvh = t.h / (p.heads / p.kv_heads);
    if (k_warp) load_tile_q<Traits, true, kFused>(wp, t, s_base, bar, qs, leader);
    const PairChunks chunks = schedule.chunks(t);
    const bool own = __ldg(&p.pair_rows[t.item].own) != 0;
    for (int u = 0; u < chunks.n; ++u, ++pos) {
      const int readers = own ? pair_chunk_members(chunks.code(u)) : 3;
      int2 tile{0, 0};
      int start = 0;
      if constexpr (kFused) tile = __ldg(chunks.tiles + u);
      else start = pair_chunk_block(chunks.code(u)) * 64;
      if (k_warp) {
        const RingSlot<Traits::kKStages> s(pos);
        sm90::mbarrier_wait(&bar.k_empty[s.slot], s.phase ^ 1);
        if (leader) {
          load_key_block<Traits, kFused>(
              s_base + Traits::kKOffset + s.slot * Traits::kSlotBytes, wp.video, wp.video.k,
              &wp.tma_k, &bar.k_full[s.slot], tile, start, kvh, t.b);
          for (int g = 0; g < 2; ++g)
            if (!((readers >> g) & 1)) sm90::mbarrier_arrive(&bar.k_empty[s.slot], 4u);
        }
        continue;
      }
      const RingSlot<Traits::kVStages> s(pos);
      const uint32_t sV = s_base + Traits::kVOffset + s.slot * Traits::kSlotBytes;
      const int valid = kFused ? unpack_tile(wp.video.grid, tile).tokens()
                               : chunks.block_valid(start / 64);
      const bool padded = p.kv_block_valid != nullptr && valid < min(64, p.kv_len - start);
      sm90::mbarrier_wait(&bar.v_empty[s.slot], s.phase ^ 1);
      if (leader) {
        load_key_block<Traits, kFused>(sV, wp.video, wp.video.v, &wp.tma_v,
                                       padded ? &bar.v_landed[s.slot] : &bar.v_full[s.slot],
                                       tile, start, kvh, t.b);
        for (int g = 0; g < 2; ++g)
          if (!((readers >> g) & 1)) sm90::mbarrier_arrive(&bar.v_empty[s.slot]);
      }
      if (padded) {
        sm90::mbarrier_wait(&bar.v_landed[s.slot], (landed_phase >> s.slot) & 1);
        landed_phase ^= 1u << s.slot;
        zero_rows<Traits, 64>(sV, valid);
        sm90::fence_proxy_async();  // the consumers read through wgmma (the async proxy)
        __syncwarp();
        if (leader) sm90::mbarrier_arrive(&bar.v_full[s.slot]);
      }
    }
  }
}

// S = Q [K_a K_b]^T over the round's two K blocks, one commit group.
template <typename Traits>
__device__ __forceinline__ void issue_round_scores(float (&S)[Traits::kNTiles][4], uint32_t sQg,
                                                   uint32_t sKa, uint32_t sKb) {
  using Mma = sm90::Wgmma<typename Traits::Element, 64>;
  float(&s)[2][32] = reinterpret_cast<float(&)[2][32]>(S);
  sm90::fence();
  Mma::ss0(s[0], sm90::smem_desc(sQg), sm90::smem_desc(sKa));
  Mma::ss0(s[1], sm90::smem_desc(sQg), sm90::smem_desc(sKb));
#pragma unroll
  for (int kk = 1; kk < Traits::kHeadDim / 16; ++kk) {
    const uint32_t col = kk >> 2;  // 64-element column block of head_dim
    const uint32_t in_atom = (kk & 3) * 32;
    const uint64_t q = sm90::smem_desc(sQg + col * Traits::kBlockM * 128 + in_atom);
    Mma::ss(s[0], q, sm90::smem_desc(sKa + col * 64 * 128 + in_atom), 1);
    Mma::ss(s[1], q, sm90::smem_desc(sKb + col * 64 * 128 + in_atom), 1);
  }
  sm90::commit();
}

// O += P [V_a; V_b], one commit group.
template <typename Traits>
__device__ __forceinline__ void issue_round_pv(float (&O)[Traits::kDTiles][4],
                                               const uint32_t (&P)[8][4], uint32_t sVa,
                                               uint32_t sVb) {
  using Mma = sm90::Wgmma<typename Traits::Element, Traits::kHeadDim>;
  float(&o)[Traits::kHeadDim / 2] = reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O);
  sm90::fence_operand(o);
  sm90::fence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk)  // 16 keys = 16 rows of a V block
    Mma::rs_t(o, P[kk], sm90::smem_desc((kk < 4 ? sVa : sVb) + (kk % 4) * 16 * 128, 64 * 128));
  sm90::commit();
}

// A round's two blocks in the K and V rings (the same block twice where second == first),
// from the tile's first ring position.
template <typename Traits>
struct RoundSlots {
  RingSlot<Traits::kKStages> ka, kb;
  RingSlot<Traits::kVStages> va, vb;
  bool two;
  __device__ __forceinline__ RoundSlots(int base, int32_t round)
      : ka(base + round_first(round)),
        kb(base + round_second(round)),
        va(base + round_first(round)),
        vb(base + round_second(round)),
        two(round_second(round) != round_first(round)) {}
};

// Consumer warpgroup g: its rounds of each tile in turns with the other warpgroup. With own
// rounds every K and V wait falls in a turn (the order pair_rounds.h plans by): the last
// round's P V takes a turn of its own, and the warpgroup with fewer rounds takes empty turns
// to the other's count. Shared rounds read every block in both warpgroups, so each sees every
// fill of a slot in order: there, as in the stage kernels, a warpgroup waits for K before its
// turn and runs the last P V after its turns. The blocks' valid keys come with the rounds.
template <typename Traits, bool kFused>
__device__ __forceinline__ void consume_rounds(const WsParams& wp, uint8_t* smem,
                                               WsBarriers<Traits>& bar, int g) {
  const AttentionParams& p = wp.a;
  const WsSchedule<Traits, true, true, kFused> schedule{p};
  constexpr float kLog2e = 1.4426950408889634f;
  const float scale_log2 = p.scale * kLog2e;
  const bool leader = threadIdx.x % 128 == 0;
  const uint32_t s_base = sm90::smem_u32(smem);
  const PingPong<true> turn{g};
  auto sK = [&](int slot) { return s_base + Traits::kKOffset + slot * Traits::kSlotBytes; };
  auto sV = [&](int slot) { return s_base + Traits::kVOffset + slot * Traits::kSlotBytes; };
  sm90::PipelineState<Traits::kQStages> qs;
  int held_q = -1;  // Q stage the previous tile's O store may still be reading
  int base = 0;     // ring position of the tile's first union block
  turn.start();
  WsItems<Traits, true> items{p, bar, schedule.num_items()};
  for (int i = items.take(); i >= 0; i = items.take()) {
    const WsTile t = schedule.tile(i);
    const PairRows* r = p.pair_rows + t.item;
    const int n = __ldg(&r->count);
    const int rounds = __ldg(&r->rounds[g]);
    const bool own = __ldg(&r->own) != 0;
    const int longest = max(rounds, __ldg(&r->rounds[g ^ 1]));
    const int turns = own && longest > 0 ? longest + 1 : longest;
    const int2* steps = reinterpret_cast<const int2*>(p.pair_rounds) + __ldg(&r->steps) + g;
    float O[Traits::kDTiles][4];
    WsSoftmax<Traits> sm;
    const uint32_t sQg = s_base + Traits::kQOffset + qs.stage * Traits::kQBytes + g * 64 * 128;
    start_tile<Traits>(O, sm, bar, qs, held_q, leader);
    int used = 0;  // turns taken
    if (rounds > 0) {
      float S[Traits::kNTiles][4];
      uint32_t P[8][4];
      float alpha[2];
      int2 round = __ldg(steps);
      int2 next = rounds > 1 ? __ldg(steps + 2) : int2{0, 0};
      // Waits for the round's K (before the turn in shared rounds, in it with own ones) and
      // issues its S.
      const auto scores = [&](const RoundSlots<Traits>& s) {
        if (own) turn.wait_turn();
        sm90::mbarrier_wait(&bar.k_full[s.ka.slot], s.ka.phase);
        sm90::mbarrier_wait(&bar.k_full[s.kb.slot], s.kb.phase);
        if (!own) turn.wait_turn();
        issue_round_scores<Traits>(S, sQg, sK(s.ka.slot), sK(s.kb.slot));
      };
      // After the round's S: K released, masked, softmax.
      const auto finish_scores = [&](const RoundSlots<Traits>& s, int2 rd, auto wait_s) {
        wait_s();
        sm90::fence_operand(reinterpret_cast<float(&)[Traits::kBlockN / 2]>(S));
        release_k_stage(&bar.k_empty[s.ka.slot]);
        if (s.two) release_k_stage(&bar.k_empty[s.kb.slot]);
        const int to0 = round_attends_first(rd.x) ? round_valid_first(rd.y) : 0;
        const int to1 = round_attends_second(rd.x) ? round_valid_second(rd.y) : 0;
        if (to0 < 64 || to1 < 64) mask_halves<Traits>(S, to0, to1);
        sm.step(S, scale_log2, alpha);
      };
      const auto pv = [&](const RoundSlots<Traits>& s) {
        sm90::mbarrier_wait(&bar.v_full[s.va.slot], s.va.phase);
        sm90::mbarrier_wait(&bar.v_full[s.vb.slot], s.vb.phase);
        issue_round_pv<Traits>(O, P, sV(s.va.slot), sV(s.vb.slot));
      };
      const auto release_v = [&](const RoundSlots<Traits>& s) {
        if (leader) {
          sm90::mbarrier_arrive(&bar.v_empty[s.va.slot]);
          if (s.two) sm90::mbarrier_arrive(&bar.v_empty[s.vb.slot]);
        }
      };
      RoundSlots<Traits> prev(base, round.x);
      scores(prev);
      turn.pass_turn();
      finish_scores(prev, round, [] { sm90::wait<0>(); });
      pack_probabilities<Traits>(S, P);
      for (int j = 1; j < rounds; ++j) {
        round = next;
        if (j + 1 < rounds) next = __ldg(steps + 2 * (j + 1));
        const RoundSlots<Traits> cur(base, round.x);
        scores(cur);
        rescale<Traits>(O, alpha);
        pv(prev);
        turn.pass_turn();
        finish_scores(cur, round, [] { sm90::wait<1>(); });
        sm90::wait<0>();
        sm90::fence_operand(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O));
        release_v(prev);
        pack_probabilities<Traits>(S, P);
        prev = cur;
      }
      if (own) turn.wait_turn();
      rescale<Traits>(O, alpha);
      pv(prev);
      if (own) turn.pass_turn();
      sm90::wait<0>();
      sm90::fence_operand(reinterpret_cast<float(&)[Traits::kHeadDim / 2]>(O));
      release_v(prev);
      used = own ? rounds + 1 : rounds;
    }
    for (; used < turns; ++used) {
      turn.wait_turn();
      turn.pass_turn();
    }
    consumer_epilogue<Traits, true, kFused>(wp, t, g,
                                            smem + Traits::kQOffset + qs.stage * Traits::kQBytes,
                                            O, sm);
    held_q = qs.stage;
    qs.advance();
    base += n;
  }
  if (leader) sm90::bulk_wait();
}

// kFused: in the fused tile order (WsVideo).
template <typename Traits, bool kFused>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    flash_ws_rounds_kernel(const __grid_constant__ WsParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  run_warp_specialized<Traits>(
      smem_raw, WsItems<Traits, true>::takers(true),
      [&](uint8_t* smem, auto& bar) { produce_rounds<Traits, kFused>(p, smem, bar); },
      [&](uint8_t* smem, auto& bar, int g) { consume_rounds<Traits, kFused>(p, smem, bar, g); });
}

}  // namespace sparseplan::cuda
