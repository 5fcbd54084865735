#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "plan/block_layout.h"
#include "plan/query_pairs.h"
#include "plan/tile_geometry.h"

using namespace sparseplan;

namespace {

// Query tile (f, h, w) attends the key tiles within `reach` of it along each axis; text
// blocks (if any) attend and are attended by everything.
BlockLayout window_layout(const TileGeometry& g, TileCoord reach) {
  const int n = g.total_blocks, first = g.video_block_offset();
  std::vector<uint8_t> mask(size_t(n) * size_t(n), 0);
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < n; ++k) {
      const bool q_video = q >= first && q < first + g.video_blocks;
      const bool k_video = k >= first && k < first + g.video_blocks;
      bool on = !q_video || !k_video;
      if (!on) {
        const TileCoord a = g.tile_coord(q - first), b = g.tile_coord(k - first);
        on = std::abs(a.f - b.f) <= reach.f && std::abs(a.h - b.h) <= reach.h &&
             std::abs(a.w - b.w) <= reach.w;
      }
      mask[size_t(q) * size_t(n) + size_t(k)] = on;
    }
  return mask_to_layout(mask, n, n);
}

std::vector<int32_t> consecutive(int n) {
  std::vector<int32_t> o(static_cast<size_t>(n));
  std::iota(o.begin(), o.end(), 0);
  return o;
}

bool is_permutation(std::vector<int32_t> order, int n) {
  std::sort(order.begin(), order.end());
  return order == consecutive(n);
}

}  // namespace

TEST_CASE("query blocks pair with the neighbour whose key blocks they share") {
  // A window 5 tiles tall and 1 tile wide: w-neighbours (consecutive blocks) share 1 key
  // block in 5, h-neighbours 4 in 5.
  const TileGeometry g = make_tile_geometry({16, 24, 24}, {4, 4, 4}, 64, {});
  const BlockLayout l = window_layout(g, {0, 2, 0});
  const std::vector<int32_t> order = pair_query_blocks(l, g);
  REQUIRE(is_permutation(order, g.total_blocks));
  for (size_t i = 0; i + 1 < order.size(); i += 2) {
    const TileCoord a = g.tile_coord(order[i]), b = g.tile_coord(order[i + 1]);
    CHECK(a.f == b.f);
    CHECK(a.w == b.w);
    CHECK(std::abs(a.h - b.h) == 1);
  }
  CHECK(paired_stages(l, order) < paired_stages(l, consecutive(g.total_blocks)));
}

TEST_CASE("consecutive pairs stay where pairing by overlap saves no stage") {
  const TileGeometry g = make_tile_geometry({8, 8, 8}, {4, 4, 4}, 64, {});
  const BlockLayout dense = window_layout(g, {9, 9, 9});
  CHECK(pair_query_blocks(dense, g) == consecutive(g.total_blocks));
}

TEST_CASE("text blocks and the blocks of partial tiles are paired too") {
  const TileGeometry g =
      make_tile_geometry({9, 10, 13}, {4, 4, 4}, 64, {TextPosition::Before, 200});
  const BlockLayout l = window_layout(g, {1, 1, 0});
  const std::vector<int32_t> order = pair_query_blocks(l, g);
  REQUIRE(is_permutation(order, g.total_blocks));
  CHECK(paired_stages(l, order) <= paired_stages(l, consecutive(g.total_blocks)));
}

TEST_CASE("a pair order that is not a permutation of the query blocks is refused") {
  const TileGeometry g = make_tile_geometry({8, 8, 8}, {4, 4, 4}, 64, {});
  const BlockLayout l = window_layout(g, {1, 1, 1});
  std::vector<int32_t> order = consecutive(g.total_blocks);
  order[3] = order[2];
  CHECK_THROWS_WITH(paired_stages(l, order), Catch::Contains("not a permutation"));
  order.pop_back();
  CHECK_THROWS_WITH(paired_stages(l, order), Catch::Contains("entries for"));
}

TEST_CASE("a layout over other blocks than the geometry's is refused") {
  const TileGeometry g = make_tile_geometry({8, 8, 8}, {4, 4, 4}, 64, {});
  const TileGeometry other = make_tile_geometry({8, 8, 12}, {4, 4, 4}, 64, {});
  CHECK_THROWS_WITH(pair_query_blocks(window_layout(other, {1, 1, 1}), g),
                    Catch::Contains("the geometry"));
}
