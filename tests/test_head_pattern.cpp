#include <catch2/catch.hpp>

#include "analyzer/head_stats.h"
#include "analyzer/head_pattern.h"
#include "analyzer/synthetic_capture.h"

using namespace sparseplan;

namespace {

// 4 x 4 x 4 tiles of 2 x 4 x 4 tokens, one block per tile.
const Grid kGrid{8, 16, 16};

HeadMass planted(PlantedPattern p, double sigma_hw = 2.0, int prompts = 2) {
  SyntheticSpec spec;
  spec.grid = kGrid;
  spec.block_size = 32;
  spec.tiles = {{2, 4, 4}};
  spec.prompts = prompts;
  spec.steps = 2;
  spec.model = {"synthetic", 1, 1, 64};
  PlantedHead head;
  head.pattern = p;
  head.sigma_f = 1.0;
  head.sigma_h = head.sigma_w = sigma_hw;
  spec.heads = {{head}};
  return synthetic_head_mass(spec, make_tile_geometry(kGrid, {2, 4, 4}, 32, {}), 0, 0);
}

HeadPattern label(PlantedPattern p, double sigma_hw = 2.0) {
  const TileGeometry g = make_tile_geometry(kGrid, {2, 4, 4}, 32, {});
  return classify_head(g, planted(p, sigma_hw)).pattern;
}

}  // namespace

TEST_CASE("planted patterns get their labels") {
  CHECK(label(PlantedPattern::LocalWindow) == HeadPattern::LocalWindow);
  CHECK(label(PlantedPattern::SpatialOnly) == HeadPattern::SpatialOnly);
  CHECK(label(PlantedPattern::TemporalStripe, 1.0) == HeadPattern::TemporalStripe);
  CHECK(label(PlantedPattern::Cross, 1.0) == HeadPattern::Cross);
  CHECK(label(PlantedPattern::FirstFrameSink) == HeadPattern::SinkDominated);
  CHECK(label(PlantedPattern::Diffuse) == HeadPattern::GlobalDiffuse);
}

TEST_CASE("a label comes with the numbers that decided it") {
  const TileGeometry g = make_tile_geometry(kGrid, {2, 4, 4}, 32, {});
  const HeadPatternResult r = classify_head(g, planted(PlantedPattern::SpatialOnly));
  CHECK(r.numbers.same_frame > 0.7);
  CHECK(r.numbers.local_in_frame < 0.7);
  CHECK_THAT(r.reason, Catch::Contains("own frame"));
}

TEST_CASE("blocks needed by a per-prompt head overlap little between prompts, a local head's a lot") {
  const TileGeometry g = make_tile_geometry(kGrid, {2, 4, 4}, 32, {});
  const std::vector<int> prompt = {0, 0, 1, 1}, step = {0, 1, 0, 1};
  const HeadStatsSummary varying = head_stats(g, planted(PlantedPattern::PerPrompt), prompt, step);
  const HeadStatsSummary local = head_stats(g, planted(PlantedPattern::LocalWindow), prompt, step);
  CHECK(varying.prompt_overlap < 0.4);
  CHECK(varying.step_overlap > 0.5);
  CHECK(local.prompt_overlap > 0.5);
  CHECK(local.worst_density.back() >= local.worst_density.front());
  CHECK(required_density(local, 0.9) <= required_density(local, 0.95));
}
