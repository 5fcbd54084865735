#include <catch2/catch.hpp>

#include "plan/block_layout.h"
#include "analyzer/recall.h"
#include "analyzer/synthetic_capture.h"

using namespace sparseplan;

namespace {

// 2 x 2 x 2 tiles of 1 x 4 x 4 tokens with 16-token blocks: 8 blocks, one per tile.
TileGeometry small_geometry(TextLayout text = {}) {
  return make_tile_geometry({2, 8, 8}, {1, 4, 4}, 16, text);
}

HeadMass planted(const TileGeometry& g, PlantedPattern p, int prompts = 1, int steps = 1) {
  SyntheticSpec spec;
  spec.grid = g.grid;
  spec.block_size = g.block_size;
  spec.text = g.text;
  spec.tiles = {g.tile};
  spec.prompts = prompts;
  spec.steps = steps;
  PlantedHead head;
  head.pattern = p;
  spec.heads = {{head}};
  spec.model = {"synthetic", 1, 1, 64};
  return synthetic_head_mass(spec, g, 0, 0);
}

}  // namespace

TEST_CASE("a dense layout has recall 1 and density 1") {
  const TileGeometry g = small_geometry();
  const HeadMass m = planted(g, PlantedPattern::LocalWindow);
  const BlockLayout dense = compile_head_layout(g, HeadRule{});
  const auto w = recall_row_weights(video_query_tokens(g), m.sample(0), m.blocks);
  CHECK(layout_recall(dense, m.sample(0), w) == Approx(1.0).epsilon(1e-9));
  CHECK(layout_density(g, dense) == 1.0);
}

TEST_CASE("recall of a layout is the token-weighted covered mass of its rows") {
  const TileGeometry g = small_geometry();
  HeadMass m;
  m.samples = 1;
  m.blocks = g.total_blocks;
  m.values.assign(64, 0.0f);
  for (int q = 0; q < 8; ++q) {
    m.values[size_t(q) * 8 + size_t(q)] = 0.75f;           // itself
    m.values[size_t(q) * 8 + size_t((q + 1) % 8)] = 0.25f;  // its successor
  }
  std::vector<uint8_t> diagonal(64, 0);
  for (int q = 0; q < 8; ++q) diagonal[size_t(q) * 9] = 1;
  const auto w = recall_row_weights(video_query_tokens(g), m.sample(0), m.blocks);
  const BlockLayout l = mask_to_layout(diagonal, 8, 8);
  CHECK(layout_recall(l, m.sample(0), w) == Approx(0.75));
  CHECK(mask_recall(diagonal, m.sample(0), w, 8) == Approx(0.75));
  CHECK(layout_density(g, l) == Approx(1.0 / 8));
}

TEST_CASE("text query rows do not count towards recall, text keys do") {
  const TileGeometry g = make_tile_geometry({2, 8, 8}, {1, 4, 4}, 16, {TextPosition::After, 20});
  const std::vector<double> tokens = video_query_tokens(g);
  REQUIRE(g.total_blocks == 10);
  CHECK(tokens[8] == 0.0);
  CHECK(tokens[9] == 0.0);
  CHECK(tokens[0] == 16.0);
}

TEST_CASE("the oracle picks, per query block, the fewest key blocks reaching the recall") {
  const TileGeometry g = small_geometry();
  const HeadMass m = planted(g, PlantedPattern::LocalWindow);
  const auto w = recall_row_weights(video_query_tokens(g), m.sample(0), m.blocks);
  double density = 0.0;
  const std::vector<uint8_t> mask = oracle_row_mask(g, m.sample(0), 0.8, &density);
  CHECK(mask_recall(mask, m.sample(0), w, m.blocks) >= 0.8);
  // Dropping a row's smallest selected block goes below the level for that row.
  for (int q = 0; q < m.blocks; ++q) {
    const float* row = m.sample(0) + size_t(q) * m.blocks;
    double covered = 0.0, smallest = 1.0;
    for (int k = 0; k < m.blocks; ++k)
      if (mask[size_t(q) * m.blocks + size_t(k)]) {
        covered += row[k];
        smallest = std::min(smallest, double(row[k]));
      }
    CHECK(covered >= 0.8 - 1e-6);
    CHECK(covered - smallest < 0.8);
  }
  const RecallCurve curve = oracle_recall_curve(g, m.sample(0), {0.5, 0.8, 0.99});
  CHECK(curve.density[1] == Approx(density));
  CHECK(curve.density[0] <= curve.density[1]);
  CHECK(curve.density[1] <= curve.density[2]);
}

TEST_CASE("oracle top-k recall grows with density and is complete at density 1") {
  const TileGeometry g = small_geometry();
  const HeadMass m = planted(g, PlantedPattern::Diffuse);
  const auto w = recall_row_weights(video_query_tokens(g), m.sample(0), m.blocks);
  const double low = oracle_topk_recall(g, m.sample(0), w, 0.25);
  const double high = oracle_topk_recall(g, m.sample(0), w, 0.5);
  CHECK(low < high);
  CHECK(oracle_topk_recall(g, m.sample(0), w, 1.0) == Approx(1.0));
}

TEST_CASE("block mass of the wrong size or with negative values is rejected") {
  const TileGeometry g = small_geometry();
  HeadMass m = planted(g, PlantedPattern::LocalWindow);
  m.values[3] = -0.5f;
  CHECK_THROWS_WITH(check_head_mass(g, m), Catch::Contains("negative"));
  HeadMass other = planted(small_geometry({TextPosition::After, 20}), PlantedPattern::LocalWindow);
  CHECK_THROWS_WITH(check_head_mass(g, other), Catch::Contains("blocks per row"));
}

TEST_CASE("jaccard overlap of masks") {
  CHECK(mask_jaccard({1, 1, 0, 0}, {1, 0, 1, 0}) == Approx(1.0 / 3));
  CHECK(mask_jaccard({0, 0}, {0, 0}) == 1.0);
  CHECK_THROWS(mask_jaccard({1}, {1, 0}));
}
