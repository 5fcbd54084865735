#include <catch2/catch.hpp>

#include "plan/plan_writer.h"
#include "search/budget_allocation.h"
#include "analyzer/mass_source.h"
#include "search/plan_search.h"

using namespace sparseplan;

namespace {

SyntheticSpec spec_with(const std::vector<PlantedPattern>& patterns, int prompts = 2) {
  SyntheticSpec spec;
  spec.grid = {8, 16, 16};
  spec.block_size = 32;
  spec.tiles = {{2, 4, 4}, {2, 8, 8}};
  spec.prompts = prompts;
  spec.steps = 2;
  spec.model = {"synthetic", 1, int(patterns.size()), 64};
  spec.heads.assign(1, {});
  for (PlantedPattern p : patterns) {
    PlantedHead h;
    h.pattern = p;
    spec.heads[0].push_back(h);
  }
  return spec;
}

}  // namespace

TEST_CASE("planted heads get the rule kind that fits them") {
  const SyntheticSource source(spec_with(
      {PlantedPattern::LocalWindow, PlantedPattern::PerPrompt, PlantedPattern::Diffuse}, 3));
  PlanSearchOptions o;
  o.target_recall = 0.9;
  const PlanSearchResult r = search_plan(source, o);
  const auto& heads = r.plan.layers[0];
  CHECK(heads[0].kind == RuleKind::Window);
  CHECK(heads[1].kind == RuleKind::Online);   // needs different blocks for every prompt
  CHECK(heads[2].kind == RuleKind::Dense);    // no rule saves enough
  CHECK(r.heads[0][1].prompt_overlap < 0.5);
}

TEST_CASE("every head of a searched plan keeps the target on every sample") {
  const SyntheticSource source(spec_with({PlantedPattern::LocalWindow, PlantedPattern::SpatialOnly,
                                          PlantedPattern::TemporalStripe, PlantedPattern::Cross,
                                          PlantedPattern::FirstFrameSink}));
  PlanSearchOptions o;
  o.target_recall = 0.85;
  const PlanSearchResult r = search_plan(source, o);
  for (const HeadRule& h : r.plan.layers[0]) {
    REQUIRE(h.stats);
    CHECK(h.stats->recall >= 0.85);
    CHECK(h.stats->density < 0.9);
  }
  REQUIRE(r.plan.search);
  CHECK(r.plan.search->target_recall == 0.85);
  CHECK(r.tiles.size() == 2);
}

TEST_CASE("the cheapest captured tile shape is chosen") {
  const SyntheticSource source(spec_with({PlantedPattern::LocalWindow, PlantedPattern::LocalWindow}));
  PlanSearchOptions o;
  const PlanSearchResult r = search_plan(source, o);
  double lowest = 2.0;
  for (const TileResult& t : r.tiles) lowest = std::min(lowest, t.mean_density);
  for (const TileResult& t : r.tiles)
    if (t.tile == r.plan.tile) CHECK(t.mean_density == lowest);
}

TEST_CASE("the search is deterministic whatever the number of threads") {
  const SyntheticSource source(spec_with({PlantedPattern::LocalWindow, PlantedPattern::Cross,
                                          PlantedPattern::GlobalBlocks, PlantedPattern::PerPrompt}));
  PlanSearchOptions one;
  one.threads = 1;
  PlanSearchOptions two;
  two.threads = 2;
  CHECK(plan_to_text(search_plan(source, one).plan) == plan_to_text(search_plan(source, two).plan));
}

TEST_CASE("budget mode keeps the mean density within the budget and raises the lowest recall") {
  const SyntheticSource source(spec_with({PlantedPattern::LocalWindow, PlantedPattern::SpatialOnly,
                                          PlantedPattern::TemporalStripe, PlantedPattern::Cross}));
  PlanSearchOptions o;
  o.density_budget = 0.2;
  const PlanSearchResult r = search_plan(source, o);
  double mean = 0.0, lowest = 1.0;
  for (const HeadRule& h : r.plan.layers[0]) {
    mean += h.stats->density / 4;
    lowest = std::min(lowest, h.stats->recall);
  }
  CHECK(mean <= 0.2 + 1e-9);
  CHECK(lowest > 0.5);
  CHECK(r.plan.search->density_budget == 0.2);
}

TEST_CASE("bad search options are rejected with the option named") {
  const SyntheticSource source(spec_with({PlantedPattern::LocalWindow}));
  PlanSearchOptions o;
  o.target_recall = 1.5;
  CHECK_THROWS_WITH(search_plan(source, o), Catch::Contains("--recall"));
  o.target_recall = 0.9;
  o.density_budget = 2.0;
  CHECK_THROWS_WITH(search_plan(source, o), Catch::Contains("--budget"));
  o.density_budget = -1.0;
  o.tiles = {{1, 2, 2}};
  CHECK_THROWS_WITH(search_plan(source, o), Catch::Contains("tile 1x2x2 was not captured"));
}

TEST_CASE("budget allocation lifts the lowest head first") {
  // Head 0 is cheap to satisfy, head 1 expensive: head 1 gets the budget head 0 does not need.
  const std::vector<std::vector<BudgetOption>> options = {
      {{0.05, 0.8}, {0.1, 0.95}, {1.0, 1.0}},
      {{0.1, 0.5}, {0.3, 0.8}, {0.5, 0.9}, {1.0, 1.0}},
  };
  const BudgetAllocation a = allocate_density_budget(options, 0.3);
  CHECK(a.within_budget);
  CHECK(a.mean_density <= 0.3 + 1e-12);
  CHECK(a.choice[1] == 2);
  CHECK(a.lowest_recall == Approx(0.9));
}

TEST_CASE("budget allocation reports a budget below every head's cheapest option") {
  const BudgetAllocation a = allocate_density_budget({{{0.5, 0.9}}, {{0.5, 0.9}}}, 0.1);
  CHECK_FALSE(a.within_budget);
  CHECK_THROWS_WITH(allocate_density_budget({{{0.5, 0.9}}}, 0.0), Catch::Contains("outside (0, 1]"));
  CHECK_THROWS(allocate_density_budget({{}}, 0.5));
}
