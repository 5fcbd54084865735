// Padded work: partial tiles cost whole blocks, and the search counts that cost.
#include <catch2/catch.hpp>

#include "analyzer/mass_source.h"
#include "plan/padding_cost.h"
#include "search/plan_search.h"

using namespace sparseplan;

TEST_CASE("Wan2.1 480p with 4x4x4 tiles pads 22 percent of its tokens") {
  const TileGeometry g = make_tile_geometry({21, 30, 52}, {4, 4, 4}, 64, {});
  const PaddingCost c = padding_cost(g);
  CHECK(c.tokens == 32760);
  CHECK(c.slots == 6 * 8 * 13 * 64);  // 39936
  CHECK(c.padding() == 7176);
  CHECK(c.padded_fraction() == Approx(7176.0 / 32760.0));
  CHECK(c.padded_fraction() == Approx(0.219).margin(5e-4));
  CHECK(c.work_factor() == Approx((39936.0 / 32760.0) * (39936.0 / 32760.0)));
  CHECK(c.cost(0.5) == Approx(0.5 * c.work_factor()));
  // 21 = 5 x 4 + 1 frames and 30 = 7 x 4 + 2 rows leave partial tiles at two edges; 52 = 13 x 4
  // columns divide: all but 5 x 7 x 13 tiles are partial.
  CHECK(c.partial_blocks == 6 * 8 * 13 - 5 * 7 * 13);
  CHECK(c.empty_blocks == 0);
}

TEST_CASE("a tile shape that divides the grid adds no padded work") {
  const TileGeometry g = make_tile_geometry({21, 30, 52}, {3, 5, 13}, 65, {});
  const PaddingCost c = padding_cost(g);
  CHECK(c.padding() == 0);
  CHECK(c.partial_blocks == 0);
  CHECK(c.work_factor() == 1.0);
}

TEST_CASE("a tile smaller than its block leaves the rest of the block as padding") {
  // 2x2x2 tiles (8 tokens) in 16-token blocks: every block half padding.
  const TileGeometry g = make_tile_geometry({4, 4, 4}, {2, 2, 2}, 16, {});
  const PaddingCost c = padding_cost(g);
  CHECK(c.padded_fraction() == Approx(1.0));
  CHECK(c.work_factor() == Approx(4.0));
  CHECK(c.partial_blocks == c.blocks);
}

TEST_CASE("the search chooses the tile shape of the least padded work, not the least density") {
  // 8 x 12 x 12: 2x4x4 tiles divide it, 2x8x8 tiles pad the height and width to 16.
  SyntheticSpec spec;
  spec.grid = {8, 12, 12};
  spec.block_size = 32;
  spec.tiles = {{2, 4, 4}, {2, 8, 8}};
  spec.model = {"synthetic", 1, 2, 64};
  spec.heads.assign(1, {});
  for (int h = 0; h < 2; ++h) {
    PlantedHead head;
    head.pattern = PlantedPattern::LocalWindow;
    spec.heads[0].push_back(head);
  }
  const SyntheticSource source(spec);
  const PlanSearchResult r = search_plan(source, PlanSearchOptions{});
  REQUIRE(r.tiles.size() == 2);
  const TileResult& divides = r.tiles[0].tile[1] == 4 ? r.tiles[0] : r.tiles[1];
  const TileResult& pads = r.tiles[0].tile[1] == 4 ? r.tiles[1] : r.tiles[0];
  CHECK(divides.padded_fraction == 0.0);
  CHECK(divides.cost == Approx(divides.mean_density));
  CHECK(pads.padded_fraction == Approx(16.0 * 16.0 / (12.0 * 12.0) - 1.0));
  CHECK(pads.cost == Approx(pads.mean_density * (16.0 * 16.0 / 144.0) * (16.0 * 16.0 / 144.0)));
  const TileResult& cheapest = divides.cost <= pads.cost ? divides : pads;
  CHECK(r.plan.tile == cheapest.tile);
}
