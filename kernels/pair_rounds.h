// The rounds of a paired tile (flash_ws_rounds.cuh): how its two consumer warpgroups walk the
// union of their query blocks' key blocks. Plain C++ for the CPU tests; the pair work-list
// kernel runs the same code on the device.
//
// A stage shared by both warpgroups computes two union blocks for both query blocks, so a
// 3D window's pair walks about 4/3 of either block's keys (the fill bound of RESULTS.md).
// In a round each warpgroup instead computes two blocks of its own list, from a ring of single
// key blocks that the producer fills with the union in key order, so the pair takes as many
// rounds as its longer list needs. The warpgroups take turns (ping-pong), and a warpgroup
// waits for a block's K in its turn of the round that uses it (its V in the next), so a block
// may wait only for slots whose earlier blocks are used in earlier turns, otherwise the ring
// would deadlock (and a parity wait could pass a phase too early): own lists that drift apart
// by a ring (neighbours along a slow axis) run shared rounds instead, both warpgroups on the
// same two blocks, each masking the ones its query block does not list.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define SPARSEPLAN_HD __host__ __device__
#else
#define SPARSEPLAN_HD
#endif

namespace sparseplan::cuda {

// A warpgroup's round: its two union positions (the same twice where its list runs out on an
// odd count) and whether its query block attends each (a shared round's blocks may be
// another's). Positions take 14 bits: unions hold at most kMaxPairKeyBlocks (16384) blocks.
SPARSEPLAN_HD inline int32_t encode_round(int first, int second, bool attend_first,
                                          bool attend_second) {
  return int32_t(first) | int32_t(second) << 14 | int32_t(attend_first) << 28 |
         int32_t(attend_second) << 29;
}
SPARSEPLAN_HD inline int round_first(int32_t r) { return r & 0x3fff; }
SPARSEPLAN_HD inline int round_second(int32_t r) { return (r >> 14) & 0x3fff; }
SPARSEPLAN_HD inline bool round_attends_first(int32_t r) { return (r >> 28) & 1; }
SPARSEPLAN_HD inline bool round_attends_second(int32_t r) { return (r >> 29) & 1; }
// Beside each round, its blocks' valid keys (0..64 each), so the consumers mask without
// reading them from the producer.
SPARSEPLAN_HD inline int32_t encode_round_valid(int first, int second) {
  return int32_t(first) | int32_t(second) << 8;
}
SPARSEPLAN_HD inline int round_valid_first(int32_t v) { return v & 0xff; }
SPARSEPLAN_HD inline int round_valid_second(int32_t v) { return (v >> 8) & 0xff; }

// The turn (linear order of the ping-pong) in which warpgroup g waits for the block at index k
// of its own list.
SPARSEPLAN_HD inline int own_turn(int g, int k) { return 2 * (k / 2) + g; }

// Whether own rounds fit a ring of `slots` blocks: every block waited for in a turn finds the
// blocks a ring before it used in earlier turns only. `at` and `ahead` are two passes over the
// union's members (next(): bit g set where warpgroup g's block lists the key block), n0 and n1
// the lists' lengths.
template <typename Members>
SPARSEPLAN_HD bool own_rounds_fit(Members at, Members ahead, int n, int n0, int n1, int slots) {
  const int len[2] = {n0, n1};
  int before[2] = {0, 0};  // list entries before block u
  int beyond[2] = {0, 0};  // list entries before block u + slots
  for (int v = 0; v < slots && v < n; ++v) {
    const int m = ahead.next();
    beyond[0] += m & 1;
    beyond[1] += (m >> 1) & 1;
  }
  for (int u = 0; u + slots < n; ++u) {
    const int m = at.next();
    int last = -1, first = 1 << 30;
    for (int g = 0; g < 2; ++g) {
      if ((m >> g) & 1) last = last > own_turn(g, before[g]) ? last : own_turn(g, before[g]);
      if (beyond[g] < len[g])
        first = first < own_turn(g, beyond[g]) ? first : own_turn(g, beyond[g]);
      before[g] += (m >> g) & 1;
    }
    if (last >= first) return false;
    const int a = ahead.next();
    beyond[0] += a & 1;
    beyond[1] += (a >> 1) & 1;
  }
  return true;
}

struct PairRoundsPlan {
  bool own;       // own rounds (else shared)
  int rounds[2];  // per warpgroup
};

// Own rounds where they fit the ring and take no more rounds than shared ones (allow_own
// false: shared only, to time the two).
template <typename Members>
SPARSEPLAN_HD PairRoundsPlan plan_pair_rounds(Members at, Members ahead, int n, int n0, int n1,
                                              int slots, bool allow_own) {
  const int shared = (n + 1) / 2, r0 = (n0 + 1) / 2, r1 = (n1 + 1) / 2;
  const int longer = r0 > r1 ? r0 : r1;
  if (allow_own && longer <= shared && own_rounds_fit(at, ahead, n, n0, n1, slots))
    return {true, {r0, r1}};
  return {false, {shared, shared}};
}

// Each warpgroup's rounds in order: write(round, g, encode_round(...)).
template <typename Members, typename Write>
SPARSEPLAN_HD void write_pair_rounds(Members members, int n, bool own, Write&& write) {
  if (own) {
    int pending[2] = {-1, -1}, round[2] = {0, 0};
    for (int u = 0; u < n; ++u) {
      const int m = members.next();
      for (int g = 0; g < 2; ++g) {
        if (!((m >> g) & 1)) continue;
        if (pending[g] < 0) {
          pending[g] = u;
        } else {
          write(round[g]++, g, encode_round(pending[g], u, true, true));
          pending[g] = -1;
        }
      }
    }
    for (int g = 0; g < 2; ++g)
      if (pending[g] >= 0) write(round[g], g, encode_round(pending[g], pending[g], true, false));
    return;
  }
  for (int u = 0; u < n; u += 2) {
    const int ma = members.next();
    const bool pair = u + 1 < n;
    const int mb = pair ? members.next() : 0;
    for (int g = 0; g < 2; ++g)
      write(u / 2, g, encode_round(u, pair ? u + 1 : u, (ma >> g) & 1, pair && ((mb >> g) & 1)));
  }
}

}  // namespace sparseplan::cuda
