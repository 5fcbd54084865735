#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/pair_rounds.h"

using namespace sparseplan::cuda;

namespace {

// The union's members in key order (bit g: warpgroup g's query block lists the key block).
struct Members {
  const std::vector<int>* m;
  size_t i = 0;
  int next() { return (*m)[i++]; }
};

struct Lists {
  std::vector<int> members;
  int n0 = 0, n1 = 0;
};

// Union of two sorted lists of key blocks.
Lists union_of(const std::vector<int>& a, const std::vector<int>& b) {
  Lists l;
  std::vector<int> keys(a);
  keys.insert(keys.end(), b.begin(), b.end());
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (int k : keys) {
    const bool in_a = std::binary_search(a.begin(), a.end(), k);
    const bool in_b = std::binary_search(b.begin(), b.end(), k);
    l.members.push_back(int(in_a) | int(in_b) << 1);
  }
  l.n0 = int(a.size());
  l.n1 = int(b.size());
  return l;
}

PairRoundsPlan plan(const Lists& l, int slots, bool allow_own = true) {
  return plan_pair_rounds(Members{&l.members}, Members{&l.members}, int(l.members.size()), l.n0,
                          l.n1, slots, allow_own);
}

// rounds[g][r] as written.
std::vector<std::vector<int32_t>> rounds_of(const Lists& l, bool own) {
  std::vector<std::vector<int32_t>> out(2);
  write_pair_rounds(Members{&l.members}, int(l.members.size()), own,
                    [&](int round, int g, int32_t code) {
                      auto& v = out[size_t(g)];
                      if (v.size() <= size_t(round)) v.resize(size_t(round) + 1, -1);
                      v[size_t(round)] = code;
                    });
  return out;
}

// Two w-neighbours of a 3x3x3-tile window along the fastest axis: per row of the window the
// first block only the left one's, the last only the right one's.
Lists window_neighbours(int rows) {
  std::vector<int> a, b;
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < 3; ++i) {
      a.push_back(4 * r + i);
      b.push_back(4 * r + i + 1);
    }
  return union_of(a, b);
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("neighbours of a window take the rounds of their own lists", "[pair_rounds]") {
  const Lists l = window_neighbours(9);  // 27 blocks each, 36 in the union
  const PairRoundsPlan p = plan(l, 4);
  CHECK(p.own);
  CHECK(p.rounds[0] == 14);
  CHECK(p.rounds[1] == 14);
}

TEST_CASE("lists a ring apart take shared rounds", "[pair_rounds]") {
  const Lists l = union_of(range(0, 10), range(10, 20));
  const PairRoundsPlan p = plan(l, 4);
  CHECK_FALSE(p.own);
  CHECK(p.rounds[0] == 10);
  CHECK(p.rounds[1] == 10);
  CHECK(plan(l, 12).own);  // a ring wider than the drift holds both
}

TEST_CASE("a pair whose second block lists nothing gives that warpgroup no rounds", "[pair_rounds]") {
  const Lists l = union_of(range(3, 8), {});
  const PairRoundsPlan p = plan(l, 4);
  CHECK(p.own);
  CHECK(p.rounds[0] == 3);
  CHECK(p.rounds[1] == 0);
}

TEST_CASE("shared rounds are planned when own rounds are not allowed", "[pair_rounds]") {
  const PairRoundsPlan p = plan(window_neighbours(9), 4, false);
  CHECK_FALSE(p.own);
  CHECK(p.rounds[0] == 18);
  CHECK(p.rounds[1] == 18);
}

TEST_CASE("own rounds hold each listed block once, in key order, an odd last one alone", "[pair_rounds]") {
  const Lists l = union_of({0, 2, 3}, {1, 2, 4, 5});  // union positions 0..5
  const auto r = rounds_of(l, true);
  REQUIRE(r[0].size() == 2);
  REQUIRE(r[1].size() == 2);
  CHECK(r[0][0] == encode_round(0, 2, true, true));
  CHECK(r[0][1] == encode_round(3, 3, true, false));
  CHECK(r[1][0] == encode_round(1, 2, true, true));
  CHECK(r[1][1] == encode_round(4, 5, true, true));
}

TEST_CASE("shared rounds give both warpgroups the union two by two, attended where listed", "[pair_rounds]") {
  const Lists l = union_of({0, 2}, {1, 2, 4});  // members 1, 2, 3, 2 at positions 0..3
  const auto r = rounds_of(l, false);
  REQUIRE(r[0].size() == 2);
  REQUIRE(r[1].size() == 2);
  CHECK(r[0][0] == encode_round(0, 1, true, false));
  CHECK(r[1][0] == encode_round(0, 1, false, true));
  CHECK(r[0][1] == encode_round(2, 3, true, false));
  CHECK(r[1][1] == encode_round(2, 3, true, true));
}

TEST_CASE("round codes keep positions and attendance apart", "[pair_rounds]") {
  const int32_t c = encode_round(16383, 9000, false, true);
  CHECK(round_first(c) == 16383);
  CHECK(round_second(c) == 9000);
  CHECK_FALSE(round_attends_first(c));
  CHECK(round_attends_second(c));
}

TEST_CASE("planned own rounds wait only for slots that earlier turns freed", "[pair_rounds]") {
  // Random lists against the rule itself, checked pair by pair of blocks a ring apart: the
  // turns that read the earlier block all come before any that reads the later one.
  std::mt19937 rng(7);
  int own = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int keys = 1 + int(rng() % 40), slots = 2 + int(rng() % 8);
    const int drift = int(rng() % 6);
    std::vector<int> a, b;
    for (int k = 0; k < keys; ++k) {
      if (rng() % 4 != 0) a.push_back(k);
      if (rng() % 4 != 0) b.push_back(k + drift);
    }
    const Lists l = union_of(a, b);
    const PairRoundsPlan p = plan(l, slots);
    if (!p.own) continue;
    ++own;
    const auto r = rounds_of(l, true);
    const int n = int(l.members.size());
    std::vector<int> first(size_t(n), 1 << 30), last(size_t(n), -1), reads(size_t(n), 0);
    for (int g = 0; g < 2; ++g) {
      REQUIRE(int(r[size_t(g)].size()) == p.rounds[g]);
      for (int k = 0; k < p.rounds[g]; ++k) {
        const int32_t c = r[size_t(g)][size_t(k)];
        for (int half = 0; half < 2; ++half) {
          if (half == 1 && !round_attends_second(c)) continue;
          const int pos = half == 0 ? round_first(c) : round_second(c);
          REQUIRE((l.members[size_t(pos)] >> g & 1) == 1);
          first[size_t(pos)] = std::min(first[size_t(pos)], 2 * k + g);
          last[size_t(pos)] = std::max(last[size_t(pos)], 2 * k + g);
          ++reads[size_t(pos)];
        }
      }
    }
    for (int u = 0; u < n; ++u) {
      CHECK(reads[size_t(u)] == (l.members[size_t(u)] & 1) + (l.members[size_t(u)] >> 1));
      for (int v = u + slots; v < n; ++v) CHECK(last[size_t(u)] < first[size_t(v)]);
    }
  }
  CHECK(own > 1000);
}
