#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "plan/tile_geometry.h"

using namespace sparseplan;

TEST_CASE("a grid the tile divides maps each tile to exactly one full block") {
  const TileGeometry g = make_tile_geometry({8, 8, 8}, {4, 4, 4}, 64, {});
  CHECK(g.tiles_f == 2);
  CHECK(g.video_blocks == 8);
  CHECK(g.padded_tokens() == 512);
  const TokenOrder o = make_token_order(g);
  CHECK(std::all_of(o.block_valid.begin(), o.block_valid.end(), [](int v) { return v == 64; }));
  // Token (f=0,h=0,w=4) is the first token of the second tile.
  CHECK(o.slot_of_token[4] == 64);
}

TEST_CASE("Wan2.1 480p grid 21x30x52 works with partial edge tiles padded to whole blocks") {
  const TileGeometry g = make_tile_geometry({21, 30, 52}, {4, 4, 4}, 64, {});
  CHECK(g.tiles_f == 6);
  CHECK(g.tiles_h == 8);
  CHECK(g.tiles_w == 13);
  CHECK(g.video_blocks == 624);
  const TokenOrder o = make_token_order(g);
  int64_t valid = 0;
  for (int v : o.block_valid) valid += v;
  CHECK(valid == 21 * 30 * 52);
  // The corner tile is 1 x 2 x 4 tokens.
  CHECK(o.block_valid.back() == 8);
}

TEST_CASE("token order is a permutation and its two directions are inverse") {
  const TileGeometry g = make_tile_geometry({5, 7, 9}, {2, 4, 4}, 16, {TextPosition::After, 20});
  const TokenOrder o = make_token_order(g);
  std::set<int32_t> slots(o.slot_of_token.begin(), o.slot_of_token.end());
  CHECK(slots.size() == o.slot_of_token.size());
  for (size_t t = 0; t < o.slot_of_token.size(); ++t)
    CHECK(o.token_of_slot[size_t(o.slot_of_token[t])] == int32_t(t));
  const int64_t padding = std::count(o.token_of_slot.begin(), o.token_of_slot.end(), -1);
  CHECK(padding == g.padded_tokens() - g.sequence_tokens());
}

TEST_CASE("the tile-major order is the tile order's slots without the padding") {
  const TileGeometry g = make_tile_geometry({5, 7, 9}, {2, 4, 4}, 32, {TextPosition::After, 20});
  const TokenOrder o = make_token_order(g);
  const std::vector<int32_t> tokens = tile_major_tokens(o);
  const TokenOrder by_row = tile_major_order(o);
  const std::vector<int32_t>& slots = by_row.slot_of_token;
  REQUIRE(tokens.size() == size_t(g.sequence_tokens()));
  REQUIRE(slots.size() == tokens.size());
  for (size_t r = 0; r < tokens.size(); ++r) {
    CHECK(o.slot_of_token[size_t(tokens[r])] == slots[r]);
    CHECK(by_row.token_of_slot[size_t(slots[r])] == int32_t(r));
    if (r > 0) CHECK(slots[r] > slots[r - 1]);
  }
  CHECK(std::count(by_row.token_of_slot.begin(), by_row.token_of_slot.end(), -1) ==
        g.padded_tokens() - g.sequence_tokens());
  CHECK(by_row.block_valid == o.block_valid);
  // The second tile (w = 4..7 of frames 0-1, rows 0-3) follows the first's 32 tokens directly.
  CHECK(tokens[32] == 4);
  CHECK(slots[32] == 32);
  // After the first tile row's partial third tile (2 x 4 x 1 tokens) the next tile row begins.
  CHECK(tokens[72] == 4 * 9);
}

TEST_CASE("valid tokens always come first in a block, padding last") {
  const TileGeometry g = make_tile_geometry({5, 7, 9}, {2, 4, 4}, 16, {});
  const TokenOrder o = make_token_order(g);
  for (int b = 0; b < g.total_blocks; ++b)
    for (int i = 0; i < g.block_size; ++i)
      CHECK((o.token_of_slot[size_t(b * g.block_size + i)] >= 0) == (i < o.block_valid[size_t(b)]));
}

TEST_CASE("tiles larger than a block span several blocks") {
  const TileGeometry g = make_tile_geometry({4, 8, 8}, {2, 8, 8}, 64, {});
  CHECK(g.blocks_per_tile == 2);
  CHECK(g.video_blocks == 4);
}

TEST_CASE("text tokens before the video get their own leading blocks") {
  const TileGeometry g = make_tile_geometry({4, 8, 8}, {4, 4, 4}, 64, {TextPosition::Before, 70});
  CHECK(g.text_blocks == 2);
  CHECK(g.text_block_offset() == 0);
  CHECK(g.video_block_offset() == 2);
  const TokenOrder o = make_token_order(g);
  CHECK(o.slot_of_token[0] == 0);
  CHECK(o.slot_of_token[70] == 128);  // first video token starts the first video block
  CHECK(o.block_valid[1] == 6);
}

TEST_CASE("bad geometry is rejected with a message naming the field") {
  CHECK_THROWS_WITH(make_tile_geometry({0, 8, 8}, {1, 1, 1}, 64, {}), Catch::Contains("grid"));
  CHECK_THROWS_WITH(make_tile_geometry({4, 8, 8}, {8, 4, 4}, 64, {}), Catch::Contains("tile"));
  CHECK_THROWS_WITH(make_tile_geometry({4, 8, 8}, {0, 4, 4}, 64, {}), Catch::Contains("tile"));
  CHECK_THROWS_WITH(make_tile_geometry({4, 8, 8}, {4, 4, 4}, 64, {TextPosition::None, 5}),
                    Catch::Contains("text"));
}
