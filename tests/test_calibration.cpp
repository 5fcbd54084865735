#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <numeric>
#include <vector>

#include "analyzer/mass_source.h"
#include "base/video_metrics.h"
#include "plan/cost_model.h"
#include "plan/plan_loader.h"
#include "plan/plan_writer.h"
#include "search/calibration.h"

using namespace sparseplan;

namespace {

// Three layers of two identical local heads: only a planted sensitivity tells them apart.
SyntheticSpec three_layer_spec() {
  SyntheticSpec spec;
  spec.model = {"synthetic", 3, 2, 64};
  spec.grid = {8, 16, 16};
  spec.block_size = 64;
  spec.tiles = {{2, 4, 8}};
  spec.prompts = 2;
  spec.steps = 2;
  PlantedHead h;
  h.pattern = PlantedPattern::LocalWindow;
  h.sigma_f = 2.0;
  h.sigma_h = 4.0;
  h.sigma_w = 4.0;
  spec.heads.assign(3, {h, h});
  return spec;
}

double layer_dropped(const Plan& plan, size_t layer) {
  double sum = 0.0;
  for (const HeadRule& r : plan.layers[layer])
    if (r.kind != RuleKind::Dense && r.stats) sum += 1.0 - r.stats->recall;
  return sum / double(plan.layers[layer].size());
}

double layer_density(const Plan& plan, size_t layer) {
  const TileGeometry g = make_tile_geometry(plan);
  double sum = 0.0;
  for (const HeadRule& r : plan.layers[layer]) sum += head_price_density(g, r);
  return sum / double(plan.layers[layer].size());
}

// A planted "model": the video error is the weighted dropped mass of each layer, shrunk by the
// share of dense warm-up steps; weights[l] is layer l's sensitivity.
PlanEvaluator planted_evaluator(const std::vector<double>& weights, int steps, int* runs) {
  return [=](const Plan& plan) {
    ++*runs;
    double error = 0.0;
    for (size_t l = 0; l < weights.size(); ++l) error += weights[l] * layer_dropped(plan, l);
    error *= 1.0 - double(plan.schedule.warmup_steps) / steps;
    CalibrationScore s;
    s.psnr_mean = s.psnr_worst = psnr_from_mse(error);
    s.time_fraction = predict_plan_cost(plan, steps, 2).fraction();
    return s;
  };
}

CalibrationOptions quality_options(double psnr) {
  CalibrationOptions o;
  o.target_psnr = psnr;
  o.steps = 10;
  o.warmups = {0, 2};
  o.search.threads = 1;
  return o;
}

// A quality-target calibration of the three-layer synthetic model with planted sensitivities;
// *runs counts the model runs.
CalibrationResult calibrate_for_psnr(double psnr, const std::vector<double>& weights, int* runs) {
  const SyntheticSource source(three_layer_spec());
  const CalibrationOptions o = quality_options(psnr);
  return calibrate_plan(source, o, planted_evaluator(weights, o.steps, runs));
}

// (cost, error) per level of two layers; the last level of each is dense (no error).
std::vector<std::vector<LayerLevel>> two_layer_levels() {
  return {
      {{1.0, 10.0}, {2.0, 1.0}, {4.0, 0.0}},
      {{1.0, 2.0}, {2.0, 1.5}, {4.0, 0.0}},
  };
}

// A speed-target calibration of the three-layer synthetic model, every layer equally sensitive;
// with refresh intervals, of residual_cache plans. *runs (when given) counts the model runs.
CalibrationResult calibrate_for_time(double time_fraction,
                                     const std::vector<int>& refresh_every = {},
                                     int* runs = nullptr) {
  const SyntheticSource source(three_layer_spec());
  int own_runs = 0;
  CalibrationOptions o = quality_options(-1.0);
  o.target_time_fraction = time_fraction;
  if (!refresh_every.empty()) {
    o.compensation = Compensation::ResidualCache;
    o.refresh_every = refresh_every;
  }
  return calibrate_plan(source, o,
                        planted_evaluator({0.2, 0.2, 0.2}, o.steps, runs ? runs : &own_runs));
}

}  // namespace

TEST_CASE("allocation for an error budget takes the cheapest levels that fit it") {
  // Layer 0 buys a lot of error per ms, layer 1 little: layer 0 is raised first.
  const std::vector<std::vector<LayerLevel>> levels = two_layer_levels();
  const LayerAllocation a = allocate_for_error(levels, 3.5);
  CHECK(a.feasible);
  CHECK(a.level == std::vector<int>{1, 0});
  CHECK(a.error == Approx(3.0));
  CHECK(a.cost == Approx(3.0));
  const LayerAllocation exact = allocate_for_error(levels, 0.0);
  CHECK(exact.level == std::vector<int>{2, 2});
}

TEST_CASE("allocation for a cost budget lowers the error as far as the budget allows") {
  const std::vector<std::vector<LayerLevel>> levels = two_layer_levels();
  const LayerAllocation a = allocate_for_cost(levels, 3.0);
  CHECK(a.feasible);
  CHECK(a.cost <= 3.0);
  CHECK(a.level == std::vector<int>{1, 0});
  const LayerAllocation none = allocate_for_cost(levels, 1.5);
  CHECK_FALSE(none.feasible);
}

TEST_CASE("calibration moves density to the one sensitive layer") {
  int runs = 0;
  const CalibrationResult r = calibrate_for_psnr(30.0, {0.01, 1.0, 0.01}, &runs);
  REQUIRE(r.met);
  CHECK(r.sensitivity[1] > 10 * r.sensitivity[0]);
  CHECK(r.sensitivity[1] > 10 * r.sensitivity[2]);
  CHECK(layer_density(r.plan, 1) > layer_density(r.plan, 0));
  CHECK(layer_density(r.plan, 1) > layer_density(r.plan, 2));
  CHECK(r.score.psnr_mean >= 30.0);
  CHECK(r.model_runs == runs);
}

TEST_CASE("a calibrated plan records its target, the PSNR it reached and its model runs") {
  int runs = 0;
  const CalibrationResult r = calibrate_for_psnr(25.0, {0.05, 0.05, 0.05}, &runs);
  REQUIRE(r.met);
  REQUIRE(r.plan.search);
  REQUIRE(r.plan.search->calibration);
  const CalibrationInfo& c = *r.plan.search->calibration;
  CHECK(c.target_psnr == 25.0);
  CHECK(c.psnr_mean >= 25.0);
  CHECK(c.time_fraction < 1.0);
  CHECK(c.model_runs == runs);
  CHECK(r.plan.schedule.total_steps == quality_options(25.0).steps);
}

TEST_CASE("a speed target gives a plan within that attention time") {
  const CalibrationResult r = calibrate_for_time(0.6);
  REQUIRE(r.met);
  CHECK(r.score.time_fraction <= 0.6);
}

TEST_CASE("an impossible speed target says no plan meets the target and returns the best found") {
  const CalibrationResult r = calibrate_for_time(0.001);
  CHECK_FALSE(r.met);
  CHECK_THAT(r.message, Catch::Contains("no plan meets the target"));
  CHECK(r.plan.layers.size() == 3);
}

TEST_CASE("an impossible quality target says no plan meets the target") {
  int runs = 0;
  // Every sparse layer costs 30 dB at least: only dense attention reaches 100 dB.
  const CalibrationResult r = calibrate_for_psnr(100.0, {1.0, 1.0, 1.0}, &runs);
  CHECK_FALSE(r.met);
  CHECK_THAT(r.message, Catch::Contains("no plan meets the target"));
}

TEST_CASE("calibration rejects bad targets with the option named") {
  const SyntheticSource source(three_layer_spec());
  int runs = 0;
  const PlanEvaluator ev = planted_evaluator({1, 1, 1}, 10, &runs);
  CalibrationOptions both = quality_options(30.0);
  both.target_time_fraction = 0.5;
  CHECK_THROWS_WITH(calibrate_plan(source, both, ev), Catch::Contains("exactly one"));
  CHECK_THROWS_WITH(calibrate_plan(source, quality_options(250.0), ev),
                    Catch::Contains("target-psnr"));
  CalibrationOptions warm = quality_options(30.0);
  warm.warmups = {10};
  CHECK_THROWS_WITH(calibrate_plan(source, warm, ev), Catch::Contains("warm-up 10"));
  CHECK(runs == 0);
}

TEST_CASE("calibration metadata round-trips through the plan writer and loader") {
  Plan p;
  p.model = {"wan-mini", 1, 1, 128};
  p.grid = {4, 8, 8};
  p.block_size = 16;
  p.tile = {1, 4, 4};
  p.layers = {{HeadRule{}}};
  CalibrationInfo c;
  c.prompts = {"bg-solid bgcolor-red pan-down black circle move-right large"};
  c.seeds = {1, 2};
  c.steps = 30;
  c.video = {16, 64, 64};
  c.guidance = 5.0;
  c.target_psnr = 30.0;
  c.psnr_mean = std::numeric_limits<double>::infinity();
  c.psnr_worst = 31.25;
  c.time_fraction = 0.55;
  c.model_runs = 17;
  p.search = SearchInfo{};
  p.search->calibration = c;
  const Plan back = plan_from_json_text(plan_to_text(p));
  REQUIRE(back.search);
  REQUIRE(back.search->calibration);
  const CalibrationInfo& b = *back.search->calibration;
  CHECK(b.prompts == c.prompts);
  CHECK(b.seeds == c.seeds);
  CHECK(b.video == c.video);
  CHECK(b.target_psnr == 30.0);
  CHECK(b.target_time_fraction < 0);
  CHECK(b.psnr_mean == CalibrationInfo::kMaxPsnr);  // identical videos are stored capped
  CHECK(b.psnr_worst == 31.25);
  CHECK(b.model_runs == 17);
}

TEST_CASE("a bad calibration field is reported with its JSON path") {
  Plan p;
  p.model = {"wan-mini", 1, 1, 128};
  p.grid = {4, 8, 8};
  p.block_size = 16;
  p.tile = {1, 4, 4};
  p.layers = {{HeadRule{}}};
  p.search = SearchInfo{};
  p.search->calibration = CalibrationInfo{};
  std::string text = plan_to_text(p);
  // steps 0 and an empty prompt list, as written from a default CalibrationInfo.
  CHECK_THROWS_WITH(plan_from_json_text(text, "cal.json"),
                    Catch::Contains("search.calibration.prompts") &&
                        Catch::Contains("search.calibration.steps"));
}


TEST_CASE("a residual_cache calibration gives plans with it and a refresh every K steps") {
  int runs = 0;
  const CalibrationResult r = calibrate_for_time(0.8, {3}, &runs);
  const CalibrationOptions o = quality_options(-1.0);
  REQUIRE(r.met);
  CHECK(r.plan.compensation == Compensation::ResidualCache);
  const int w = r.plan.schedule.warmup_steps;
  std::vector<int> want;
  for (int s = w + 3; s < o.steps; s += 3) want.push_back(s);
  CHECK(r.plan.schedule.refresh_steps == want);
  // The refreshes are priced in: the plan stays within the speed target.
  CHECK(predict_plan_cost(r.plan, o.steps, 2).fraction() <= 0.8 + 1e-9);
}

TEST_CASE("a residual_cache calibration measures every warm-up and every refresh interval, plans without the cache among them") {
  int runs = 0;
  const int off = CalibrationOptions::kNoCache;
  const CalibrationResult r = calibrate_for_time(0.8, {off, 0, 3}, &runs);
  std::set<std::pair<int, int>> schedules;
  for (const CalibrationTrial& t : r.trials)
    if (t.what == "schedule") schedules.insert({t.warmup, t.refresh_every});
  // Reference warm-up 2 and interval 0: each other value once beside the reference of the other.
  CHECK(schedules == std::set<std::pair<int, int>>{{0, 0}, {2, off}, {2, 0}, {2, 3}});
  CHECK(runs == r.model_runs);
}

TEST_CASE("refresh intervals without the residual cache are refused, not ignored") {
  const SyntheticSource source(three_layer_spec());
  int runs = 0;
  CalibrationOptions o = quality_options(30.0);
  o.refresh_every = {3};
  CHECK_THROWS_WITH(calibrate_plan(source, o, planted_evaluator({1, 1, 1}, o.steps, &runs)),
                    Catch::Contains("residual_cache"));
  CHECK(runs == 0);
}
TEST_CASE("density levels reach a speed target below every recall level's time") {
  const SyntheticSource source(three_layer_spec());
  int runs = 0;
  CalibrationOptions o = quality_options(-1.0);
  o.target_time_fraction = 0.3;
  o.recall_levels = {0.85};
  o.density_levels.clear();
  const PlanEvaluator ev = planted_evaluator({0.2, 0.2, 0.2}, o.steps, &runs);
  CHECK_FALSE(calibrate_plan(source, o, ev).met);
  o.density_levels = {0.1, 0.2};
  const CalibrationResult r = calibrate_plan(source, o, ev);
  REQUIRE(r.met);
  CHECK(r.score.time_fraction <= 0.3);
  CHECK_THAT(r.plan.description, Catch::Contains("layers density"));
}
