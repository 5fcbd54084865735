// Runs the model densely and with plans from the same noise on a set of prompts and seeds, and
// measures how far each plan's final video is from the dense one (base/video_metrics.h), its
// overall attention density (dense calls count 1) and its attention time, predicted by the
// kernel cost model (plan/cost_model.h) and measured around every attention call (with a
// device synchronisation on CUDA). `sparseplan evaluate` and `sparseplan calibrate` use it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/video_metrics.h"
#include "model/flow_sampler.h"
#include "model/wan_model.h"
#include "plan/cost_model.h"
#include "plan/plan.h"
#include "runtime/plan_backend.h"

namespace sparseplan {

struct FidelityCase {
  std::string prompt;      // for reports
  torch::Tensor context;   // the prompt's text embedding
  uint64_t seed = 0;
};

struct VideoRun {
  torch::Tensor video;        // [3, F, H, W] float32 on the CPU
  double measured_ms = 0.0;   // wall time inside attention calls
  double predicted_ms = 0.0;  // cost model, call by call
};

struct FidelityResult {
  std::vector<VideoRun> runs;         // per case
  std::vector<VideoQuality> quality;  // per case, against the dense run of that case
  PlanRunStats stats;                 // summed over cases
  double psnr_mean = 0.0;   // PSNR of the MSE averaged over cases (infinite: all identical)
  double psnr_worst = 0.0;  // lowest per-case PSNR
  double ssim_mean = 0.0;
  double ssim_worst = 0.0;
  double rel_l2_mean = 0.0;
  double predicted_ms = 0.0;          // mean per video
  double measured_ms = 0.0;           // mean per video
  double density() const { return stats.mean_density(); }
};

// Fills the means and worst values from `quality`.
void summarize_quality(FidelityResult& result);

class FidelityRunner {
 public:
  // `options` gives the sampler settings (its context and seed are replaced per case); an
  // undefined negative context means wan-mini's empty prompt.
  FidelityRunner(const WanModel& model, SampleOptions options, std::vector<FidelityCase> cases,
                 AttentionCostModel cost = {});

  const std::vector<FidelityCase>& cases() const { return cases_; }
  const SampleOptions& options() const { return options_; }

  // Throws std::invalid_argument naming `name` when the plan does not fit the model or grid.
  void check_plan(const Plan& plan, const std::string& name) const;

  // The dense reference of every case, run once and kept.
  const FidelityResult& dense();
  // Runs the plan on every case and compares with dense. Throws std::invalid_argument when the
  // plan does not fit the model or grid (before any sampling).
  FidelityResult run_plan(const Plan& plan);
  // Another model (e.g. bf16 weights) densely, compared with this runner's dense videos.
  FidelityResult run_dense_model(const WanModel& other);

  // Called after every sampling step of every run.
  std::function<void()> on_step;
  // How errors name the model (e.g. its directory's name).
  std::string model_name = "the model";

 private:
  FidelityResult run(const WanModel& model, PlanBackend* plan);

  const WanModel& model_;
  SampleOptions options_;
  std::vector<FidelityCase> cases_;
  AttentionCostModel cost_;
  FidelityResult dense_;
  bool dense_done_ = false;
};

}  // namespace sparseplan
