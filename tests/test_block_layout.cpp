#include <catch2/catch.hpp>

#include "plan/block_layout.h"

using namespace sparseplan;

namespace {

HeadRule window(std::vector<WindowGroup> groups) {
  HeadRule r;
  r.kind = RuleKind::Window;
  r.window.groups = std::move(groups);
  return r;
}

bool attends(const BlockLayout& l, int q, int k) {
  for (int32_t i = l.row_offsets[size_t(q)]; i < l.row_offsets[size_t(q) + 1]; ++i)
    if (l.col_indices[size_t(i)] == k) return true;
  return false;
}

}  // namespace

TEST_CASE("a dense rule attends every key block from every query block") {
  const TileGeometry g = make_tile_geometry({8, 8, 8}, {4, 4, 4}, 64, {});
  const BlockLayout l = compile_head_layout(g, HeadRule{});
  CHECK(l.nnz() == 64);
  CHECK(l.density() == 1.0);
}

TEST_CASE("a window sees its tile neighbourhood and nothing beyond the frame distance") {
  // 4 x 4 x 4 tiles of 1 x 4 x 4 tokens.
  const TileGeometry g = make_tile_geometry({4, 16, 16}, {1, 4, 4}, 16, {});
  const BlockLayout l = compile_head_layout(g, window({{1, 3, 3}}));
  const int q = g.tile_index({2, 1, 1});
  CHECK(attends(l, q, g.tile_index({2, 0, 0})));
  CHECK(attends(l, q, g.tile_index({1, 2, 2})));
  CHECK(attends(l, q, g.tile_index({3, 1, 1})));
  CHECK_FALSE(attends(l, q, g.tile_index({0, 1, 1})));  // frame distance 2
  CHECK_FALSE(attends(l, q, g.tile_index({2, 3, 1})));  // outside 3 x 3 window
  CHECK(l.row_offsets[size_t(q) + 1] - l.row_offsets[size_t(q)] == 3 * 3 * 3);
}

TEST_CASE("windows at the grid's edge shift inwards and keep their size") {
  const TileGeometry g = make_tile_geometry({1, 16, 16}, {1, 4, 4}, 16, {});
  const BlockLayout l = compile_head_layout(g, window({{0, 3, 3}}));
  const int corner = g.tile_index({0, 0, 0});
  CHECK(l.row_offsets[size_t(corner) + 1] - l.row_offsets[size_t(corner)] == 9);
  CHECK(attends(l, corner, g.tile_index({0, 2, 2})));
}

TEST_CASE("windows shrink with frame distance group by group") {
  const TileGeometry g = make_tile_geometry({4, 16, 16}, {1, 4, 4}, 16, {});
  const BlockLayout l = compile_head_layout(g, window({{0, 3, 3}, {3, 1, 1}}));
  const int q = g.tile_index({0, 1, 1});
  CHECK(attends(l, q, g.tile_index({0, 0, 0})));
  CHECK(attends(l, q, g.tile_index({3, 1, 1})));
  CHECK_FALSE(attends(l, q, g.tile_index({1, 0, 0})));
  CHECK(l.row_offsets[size_t(q) + 1] - l.row_offsets[size_t(q)] == 9 + 3);
}

TEST_CASE("sink frames and global blocks are seen by every query block") {
  const TileGeometry g = make_tile_geometry({4, 8, 8}, {1, 4, 4}, 16, {});
  HeadRule r = window({{0, 1, 1}});
  r.window.sink_frames = {0};
  r.window.global_blocks = {13};
  const BlockLayout l = compile_head_layout(g, r);
  for (int q = 0; q < g.total_blocks; ++q) {
    for (int k = 0; k < 4; ++k) CHECK(attends(l, q, k));
    CHECK(attends(l, q, 13));
  }
}

TEST_CASE("text rows and columns are always attended") {
  const TileGeometry g = make_tile_geometry({2, 8, 8}, {1, 4, 4}, 16, {TextPosition::Before, 20});
  const BlockLayout l = compile_head_layout(g, window({{0, 1, 1}}));
  REQUIRE(g.text_blocks == 2);
  for (int q = 0; q < g.total_blocks; ++q) {
    CHECK(attends(l, q, 0));
    CHECK(attends(l, q, 1));
  }
  CHECK(l.row_offsets[1] - l.row_offsets[0] == g.total_blocks);  // text query row is dense
}

TEST_CASE("columns of every row are sorted and unique") {
  const TileGeometry g = make_tile_geometry({9, 10, 12}, {2, 4, 4}, 32, {TextPosition::After, 40});
  HeadRule r = window({{0, 3, 2}, {2, 2, 1}});
  r.window.sink_frames = {0, 4};
  r.window.global_blocks = {7, 3};
  const BlockLayout l = compile_head_layout(g, r);
  for (int q = 0; q < l.num_q_blocks; ++q)
    for (int32_t i = l.row_offsets[size_t(q)] + 1; i < l.row_offsets[size_t(q) + 1]; ++i)
      CHECK(l.col_indices[size_t(i - 1)] < l.col_indices[size_t(i)]);
}

TEST_CASE("an explicit blocks rule becomes exactly its rows") {
  const TileGeometry g = make_tile_geometry({1, 8, 8}, {1, 4, 4}, 16, {});
  HeadRule r;
  r.kind = RuleKind::Blocks;
  r.blocks.rows = {{0}, {1, 3}, {}, {0, 1, 2, 3}};
  const BlockLayout l = compile_head_layout(g, r);
  CHECK(l.row_offsets == std::vector<int32_t>{0, 1, 3, 3, 7});
  CHECK(l.col_indices == std::vector<int32_t>{0, 1, 3, 0, 1, 2, 3});
}

TEST_CASE("a blocks rule for another grid is rejected") {
  const TileGeometry g = make_tile_geometry({1, 8, 8}, {1, 4, 4}, 16, {});
  HeadRule r;
  r.kind = RuleKind::Blocks;
  r.blocks.rows = {{0}, {1}};
  CHECK_THROWS_WITH(compile_head_layout(g, r), Catch::Contains("2 rows"));
}

TEST_CASE("mask and layout conversions are inverse") {
  std::vector<uint8_t> mask = {1, 0, 1, 0, 0, 0, 1, 1, 1};
  CHECK(layout_to_mask(mask_to_layout(mask, 3, 3)) == mask);
}
