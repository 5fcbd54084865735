#include "plan/query_pairs.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <tuple>

namespace sparseplan {
namespace {

// Each query block's key blocks as a bitset, so that a candidate pair's union and overlap are
// a few popcounts.
struct KeySets {
  int words = 0;
  std::vector<uint64_t> bits;  // [num_q_blocks][words]

  explicit KeySets(const BlockLayout& l) : words((l.num_k_blocks + 63) / 64) {
    bits.assign(size_t(l.num_q_blocks) * size_t(words), 0);
    for (int r = 0; r < l.num_q_blocks; ++r)
      for (int32_t i = l.row_offsets[size_t(r)]; i < l.row_offsets[size_t(r) + 1]; ++i) {
        const int32_t kb = l.col_indices[size_t(i)];
        if (kb < 0 || kb >= l.num_k_blocks)
          throw std::invalid_argument("pair order: key block " + std::to_string(kb) +
                                      " is outside the layout's " +
                                      std::to_string(l.num_k_blocks));
        row(r)[kb / 64] |= uint64_t(1) << (kb % 64);
      }
  }
  uint64_t* row(int r) { return bits.data() + size_t(r) * size_t(words); }
  const uint64_t* row(int r) const { return bits.data() + size_t(r) * size_t(words); }
  int size(int r) const {
    int n = 0;
    for (int w = 0; w < words; ++w) n += __builtin_popcountll(row(r)[w]);
    return n;
  }
  // |a ∪ b| and |a ∩ b|.
  std::pair<int, int> join(int a, int b) const {
    int u = 0, x = 0;
    for (int w = 0; w < words; ++w) {
      u += __builtin_popcountll(row(a)[w] | row(b)[w]);
      x += __builtin_popcountll(row(a)[w] & row(b)[w]);
    }
    return {u, x};
  }
};

int stages(int keys) { return (keys + 1) / 2; }

void check_order(const BlockLayout& layout, const std::vector<int32_t>& order) {
  const int n = layout.num_q_blocks;
  if (int64_t(order.size()) != n)
    throw std::invalid_argument("pair order: " + std::to_string(order.size()) +
                                " entries for " + std::to_string(n) + " query blocks");
  std::vector<uint8_t> seen(size_t(n), 0);
  for (int32_t b : order) {
    if (b < 0 || b >= n || seen[size_t(b)])
      throw std::invalid_argument("pair order: not a permutation of the " + std::to_string(n) +
                                  " query blocks (entry " + std::to_string(b) + ")");
    seen[size_t(b)] = 1;
  }
}

int64_t stages_of(const KeySets& keys, const std::vector<int32_t>& order) {
  int64_t total = 0;
  for (size_t i = 0; i < order.size(); i += 2)
    total += stages(i + 1 < order.size() ? keys.join(order[i], order[i + 1]).first
                                         : keys.size(order[i]));
  return total;
}

// Candidate pairs: blocks of one tile, the same block of tiles next to each other, and
// consecutive text blocks.
std::vector<std::pair<int, int>> neighbours(const TileGeometry& g) {
  std::vector<std::pair<int, int>> out;
  const int bpt = g.blocks_per_tile, first = g.video_block_offset();
  for (int t = 0; t < g.num_tiles(); ++t) {
    const TileCoord c = g.tile_coord(t);
    const TileCoord next[3] = {{c.f + 1, c.h, c.w}, {c.f, c.h + 1, c.w}, {c.f, c.h, c.w + 1}};
    for (int k = 0; k < bpt; ++k) {
      const int i = first + t * bpt + k;
      if (k + 1 < bpt) out.emplace_back(i, i + 1);
      for (const TileCoord& n : next)
        if (n.f < g.tiles_f && n.h < g.tiles_h && n.w < g.tiles_w)
          out.emplace_back(i, first + g.tile_index(n) * bpt + k);
    }
  }
  const int text = g.text_block_offset();
  for (int j = 0; j + 1 < g.text_blocks; ++j) out.emplace_back(text + j, text + j + 1);
  return out;
}

// An order made pair by pair; the blocks no pair took follow in increasing order.
struct PairBuilder {
  std::vector<uint8_t> taken;
  std::vector<int32_t> order;

  explicit PairBuilder(int n) : taken(static_cast<size_t>(n), 0) { order.reserve(taken.size()); }
  bool free(int a, int b) const { return !taken[size_t(a)] && !taken[size_t(b)]; }
  void pair(int a, int b) {
    taken[size_t(a)] = taken[size_t(b)] = 1;
    order.push_back(a);
    order.push_back(b);
  }
  std::vector<int32_t> finish() {
    for (size_t i = 0; i < taken.size(); ++i)
      if (!taken[i]) order.push_back(int32_t(i));
    return std::move(order);
  }
};

// Tiles paired with their neighbour along one axis (coordinates 2i and 2i + 1; the block of
// one tile with the same block of the other), then what is left in increasing order.
std::vector<int32_t> axis_pairs(const TileGeometry& g, int axis) {
  const int bpt = g.blocks_per_tile, first = g.video_block_offset();
  PairBuilder pairs(g.total_blocks);
  for (int t = 0; t < g.num_tiles(); ++t) {
    TileCoord c = g.tile_coord(t);
    int* along = axis == 0 ? &c.f : axis == 1 ? &c.h : &c.w;
    const int extent = axis == 0 ? g.tiles_f : axis == 1 ? g.tiles_h : g.tiles_w;
    if (*along % 2 != 0 || *along + 1 >= extent) continue;
    ++*along;
    for (int k = 0; k < bpt; ++k)
      pairs.pair(first + t * bpt + k, first + g.tile_index(c) * bpt + k);
  }
  return pairs.finish();
}

// Blocks matched greedily with a candidate neighbour by the fewest stages the pair adds over
// its heavier block, then by the most key blocks shared; what is left in increasing order.
std::vector<int32_t> greedy_pairs(const KeySets& keys, const TileGeometry& g) {
  std::vector<std::tuple<int, int, int, int>> ranked;
  for (const auto& [a, b] : neighbours(g)) {
    const auto [united, shared] = keys.join(a, b);
    const int added = stages(united) - std::max(stages(keys.size(a)), stages(keys.size(b)));
    ranked.emplace_back(added, -shared, a, b);
  }
  std::sort(ranked.begin(), ranked.end());
  PairBuilder pairs(g.total_blocks);
  for (const auto& [added, shared, a, b] : ranked)
    if (pairs.free(a, b)) pairs.pair(a, b);
  return pairs.finish();
}

}  // namespace

int64_t paired_stages(const BlockLayout& layout, const std::vector<int32_t>& order) {
  check_order(layout, order);
  return stages_of(KeySets(layout), order);
}

std::vector<int32_t> pair_query_blocks(const BlockLayout& layout, const TileGeometry& geometry) {
  const int n = layout.num_q_blocks;
  if (n != geometry.total_blocks || layout.num_k_blocks != geometry.total_blocks)
    throw std::invalid_argument(
        "pair order: the layout has " + std::to_string(n) + " x " +
        std::to_string(layout.num_k_blocks) + " blocks, the geometry " +
        std::to_string(geometry.total_blocks));
  const KeySets keys(layout);
  // Consecutive pairs first, so that they stay where nothing is cheaper.
  std::vector<int32_t> best(static_cast<size_t>(n));
  std::iota(best.begin(), best.end(), 0);
  int64_t fewest = stages_of(keys, best);
  for (std::vector<int32_t> order : {axis_pairs(geometry, 0), axis_pairs(geometry, 1),
                                     axis_pairs(geometry, 2), greedy_pairs(keys, geometry)}) {
    const int64_t s = stages_of(keys, order);
    if (s < fewest) fewest = s, best = std::move(order);
  }
  return best;
}

}  // namespace sparseplan
