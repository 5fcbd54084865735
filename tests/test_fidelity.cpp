// The fidelity runner and the calibrated search on the real wan-mini model at a tiny grid
// (4 frames of 32 x 32 pixels: 4 x 8 x 8 tokens, 16-token blocks), on the CPU.
#include <torch/types.h>

#include <cmath>
#include <string>
#include <vector>

#include "analyzer/mass_source.h"
#include "model/text_encoder.h"
#include "model/wan_model.h"
#include "plan/cost_model.h"
#include "runtime/fidelity_runner.h"
#include "search/baseline_plans.h"
#include "search/calibration.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;

namespace {

const std::string kModelDir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";
constexpr int kSteps = 6;

const WanModel& wan_mini() {
  static const WanModel model = load_wan_model(kModelDir);
  return model;
}

FidelityRunner tiny_runner(const std::vector<std::string>& prompts) {
  const ToyTextEncoder encoder(kModelDir + "/text_encoder.safetensors", wan_mini().config.text_len);
  std::vector<FidelityCase> cases;
  uint64_t seed = 3;
  for (const std::string& p : prompts) cases.push_back({p, encoder.encode(p), seed++});
  SampleOptions so;
  so.frames = 4;
  so.height = 32;
  so.width = 32;
  so.steps = kSteps;
  return FidelityRunner(wan_mini(), so, std::move(cases));
}

Plan tiny_plan(const HeadRule& rule) {
  Plan p;
  p.model = {"wan-mini", 8, 3, 128};
  p.grid = {4, 8, 8};
  p.block_size = 16;
  p.tile = {1, 4, 4};
  p.layers.assign(8, std::vector<HeadRule>(3, rule));
  return p;
}

const std::vector<std::string> kPrompts = {
    "bg-checker bgcolor-black pan-up green square move-down large"};

}  // namespace

TEST_CASE("a plan of dense rules evaluates to infinite PSNR against dense sampling") {
  FidelityRunner runner = tiny_runner(kPrompts);
  const FidelityResult r = runner.run_plan(tiny_plan(HeadRule{}));
  CHECK(std::isinf(r.psnr_mean));
  CHECK(std::isinf(r.psnr_worst));
  CHECK(r.ssim_mean == Approx(1.0));
  CHECK(r.rel_l2_mean == 0.0);
  CHECK(r.density() == Approx(1.0));
  CHECK(r.predicted_ms == Approx(runner.dense().predicted_ms));
}

TEST_CASE("a sparse plan evaluates to finite PSNR at lower density and predicted time") {
  FidelityRunner runner = tiny_runner(kPrompts);
  Plan p = tiny_plan(sliding_tile_rule({1, 1, 1}));
  p.schedule.warmup_steps = 2;
  const FidelityResult r = runner.run_plan(p);
  CHECK(std::isfinite(r.psnr_mean));
  CHECK(r.psnr_mean > 0.0);
  CHECK(r.ssim_mean < 1.0);
  CHECK(r.density() < 1.0);
  CHECK(r.density() > 2.0 / kSteps);  // the warm-up counts dense
  CHECK(r.predicted_ms < runner.dense().predicted_ms);
  CHECK(r.measured_ms > 0.0);
}

TEST_CASE("the evaluator predicts a static plan's time as the cost model does, refreshes included") {
  FidelityRunner runner = tiny_runner(kPrompts);
  Plan p = tiny_plan(sliding_tile_rule({1, 1, 1}));
  p.compensation = Compensation::ResidualCache;
  p.schedule.warmup_steps = 2;
  p.schedule.refresh_steps = {4};
  const FidelityResult r = runner.run_plan(p);
  CHECK(r.predicted_ms / runner.dense().predicted_ms ==
        Approx(predict_plan_cost(p, kSteps, 2).fraction()));
}

TEST_CASE("a plan for another grid is refused before anything runs") {
  FidelityRunner runner = tiny_runner(kPrompts);
  Plan p = tiny_plan(HeadRule{});
  p.grid = {4, 16, 16};
  CHECK_THROWS_WITH(runner.check_plan(p, "other.json"),
                    Catch::Contains("other.json") && Catch::Contains("token grid"));
  Plan heads = tiny_plan(HeadRule{});
  heads.model.heads = 4;
  for (auto& layer : heads.layers) layer.push_back(HeadRule{});
  CHECK_THROWS_WITH(runner.run_plan(heads), Catch::Contains("heads"));
}
