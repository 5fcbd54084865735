#include <catch2/catch.hpp>

#include <cstdio>

#include "scratch_dir.h"
#include "analyzer/mass_source.h"
#include "search/plan_compare.h"
#include "search/plan_search.h"

using namespace sparseplan;

namespace {

SyntheticSpec mixed_spec(int first_prompt) {
  SyntheticSpec spec;
  spec.grid = {8, 16, 32};
  spec.tiles = {{2, 4, 8}};
  spec.model = {"synthetic", 2, 8, 64};
  spec.prompts = 2;
  spec.steps = 2;
  spec.first_prompt = first_prompt;
  return spec;
}

}  // namespace

TEST_CASE("a searched plan holds on held-out prompts and beats fixed baselines at its density") {
  const SyntheticSource train(mixed_spec(0));
  const SyntheticSource held_out(mixed_spec(10));
  PlanSearchOptions o;
  o.target_recall = 0.9;
  const Plan plan = search_plan(train, o).plan;
  const PlanScore score = score_plan(plan, "searched", held_out);
  CHECK(score.share_within(0.9, 0.02) >= 0.95);
  CHECK(score.oracle_recall >= score.mean_recall - 0.05);
  for (const BaselineFamily& f : score_baselines(held_out, plan.tile))
    CHECK(f.recall_at(score.mean_density) < score.mean_recall);
}

TEST_CASE("scoring a window rule gives the same numbers as the search recorded") {
  const SyntheticSource train(mixed_spec(0));
  const PlanSearchResult r = search_plan(train, PlanSearchOptions{});
  const PlanScore score = score_plan(r.plan, "searched", train, CompareOptions{false, 2, {}});
  for (size_t l = 0; l < r.plan.layers.size(); ++l)
    for (size_t h = 0; h < r.plan.layers[l].size(); ++h) {
      const HeadRule& rule = r.plan.layers[l][h];
      if (rule.kind != RuleKind::Window) continue;
      CHECK(score.heads[l][h].worst_recall == Approx(rule.stats->recall).margin(1e-9));
      CHECK(score.heads[l][h].density == Approx(rule.stats->density).margin(1e-12));
    }
}

TEST_CASE("a plan for another grid or an uncaptured tile is refused with the reason") {
  const SyntheticSource source(mixed_spec(0));
  Plan plan = search_plan(source, PlanSearchOptions{}).plan;
  Plan other_grid = plan;
  other_grid.grid = {8, 16, 16};
  CHECK_THROWS_WITH(score_plan(other_grid, "p.json", source), Catch::Contains("grid 8x16x16 vs 8x16x32"));
  Plan other_tile = plan;
  other_tile.tile = {2, 8, 8};
  CHECK_THROWS_WITH(score_plan(other_tile, "p.json", source), Catch::Contains("tile 2x8x8 was not captured"));
  Plan other_model = plan;
  other_model.model.heads = 4;
  CHECK_THROWS_WITH(score_plan(other_model, "p.json", source), Catch::Contains("heads"));
}

TEST_CASE("captures of different grids or models cannot be searched together") {
  const ScratchDir scratch("compare");
  const std::string pa = (scratch.path() / "a.h5").string();
  const std::string pb = (scratch.path() / "b.h5").string();
  const std::string pc = (scratch.path() / "c.h5").string();
  SyntheticSpec a = mixed_spec(0);
  a.model.layers = 1;
  a.model.heads = 2;
  SyntheticSpec b = a;
  b.grid = {8, 16, 16};
  SyntheticSpec c = a;
  c.model.id = "other";
  write_synthetic_capture(pa, a);
  write_synthetic_capture(pb, b);
  write_synthetic_capture(pc, c);
  CHECK_THROWS_WITH(CaptureSet({pa, pb}),
                    Catch::Contains("b.h5 does not match") && Catch::Contains("grid"));
  CHECK_THROWS_WITH(CaptureSet({pa, pc}), Catch::Contains("model 'other'"));
  CHECK_THROWS(CaptureSet({(scratch.path() / "missing.h5").string()}));
  CHECK_THROWS_WITH(CaptureSet(std::vector<std::string>{}), Catch::Contains("no capture files"));
}

TEST_CASE("captures of the same model are searched as one set of samples") {
  const ScratchDir scratch("compare");
  const std::string pa = (scratch.path() / "a.h5").string();
  const std::string pb = (scratch.path() / "b.h5").string();
  SyntheticSpec a = mixed_spec(0);
  a.model.layers = 1;
  a.model.heads = 2;
  SyntheticSpec b = a;
  b.first_prompt = 5;
  write_synthetic_capture(pa, a);
  write_synthetic_capture(pb, b);
  const CaptureSet set({pa, pb});
  CHECK(set.info().samples == 8);
  CHECK(set.info().sample_prompt == std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3});
  const HeadMass m = set.head_mass({2, 4, 8}, 0, 1);
  const HeadMass expected = synthetic_head_mass(b, set.info().geometry({2, 4, 8}), 0, 1);
  CHECK(std::equal(expected.values.begin(), expected.values.end(), m.values.begin() + m.values.size() / 2));
  CHECK_THROWS_WITH(set.head_mass({2, 4, 8}, 3, 0), Catch::Contains("layer 3"));
}
