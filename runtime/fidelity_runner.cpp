#include "runtime/fidelity_runner.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <stdexcept>

#include <torch/cuda.h>

#include "plan/plan_loader.h"

namespace sparseplan {
namespace {

VideoQuality compare(const torch::Tensor& ref, const torch::Tensor& test) {
  if (ref.sizes() != test.sizes())
    throw std::invalid_argument("fidelity: videos of different shapes");
  const torch::Tensor a = ref.to(torch::kCPU, torch::kFloat32).contiguous();
  const torch::Tensor b = test.to(torch::kCPU, torch::kFloat32).contiguous();
  const VideoShape shape{int(a.size(0)), int(a.size(1)), int(a.size(2)), int(a.size(3))};
  return compare_video(a.data_ptr<float>(), b.data_ptr<float>(), shape);
}

void add_stats(PlanRunStats& sum, const PlanRunStats& s) {
  sum.dense_calls += s.dense_calls;
  sum.sparse_calls += s.sparse_calls;
  sum.reselections += s.reselections;
  sum.sparse_density_sum += s.sparse_density_sum;
}

}  // namespace

void summarize_quality(FidelityResult& r) {
  if (r.quality.empty()) return;
  double mse = 0, ssim = 0, rel = 0;
  r.psnr_worst = std::numeric_limits<double>::infinity();
  r.ssim_worst = 1.0;
  for (const VideoQuality& q : r.quality) {
    mse += q.mse;
    ssim += q.ssim;
    rel += q.rel_l2;
    r.psnr_worst = std::min(r.psnr_worst, q.psnr);
    r.ssim_worst = std::min(r.ssim_worst, q.ssim);
  }
  const double n = double(r.quality.size());
  r.psnr_mean = psnr_from_mse(mse / n);
  r.ssim_mean = ssim / n;
  r.rel_l2_mean = rel / n;
}

FidelityRunner::FidelityRunner(const WanModel& model, SampleOptions options,
                               std::vector<FidelityCase> cases, AttentionCostModel cost)
    : model_(model), options_(std::move(options)), cases_(std::move(cases)), cost_(cost) {
  if (cases_.empty()) throw std::invalid_argument("fidelity: no prompt to run");
}

FidelityResult FidelityRunner::run(const WanModel& model, PlanBackend* plan) {
  FidelityResult result;
  for (const FidelityCase& c : cases_) {
    SampleOptions so = options_;
    so.context = c.context;
    so.seed = c.seed;
    VideoRun vr;
    std::unique_ptr<PlanBackend> fresh;
    // Per layer, the cost model's price of each kind of call (the same as predict_plan_cost's);
    // online heads are priced at the density they selected, which the captures only estimate.
    std::vector<LayerCallCost> layer_cost;
    std::vector<bool> layer_online;
    if (plan) {
      fresh = std::make_unique<PlanBackend>(plan->plan());
      const Plan& p = fresh->plan();
      for (const auto& heads : p.layers) {
        layer_cost.push_back(
            layer_call_cost(fresh->geometry(), p.model.head_dim, heads, p.compensation, cost_));
        layer_online.push_back(std::any_of(heads.begin(), heads.end(), [](const HeadRule& r) {
          return r.kind == RuleKind::Online;
        }));
      }
    }
    const AttentionFn attention = [&](const AttentionCall& call, const torch::Tensor& q,
                                      const torch::Tensor& k, const torch::Tensor& v) {
      const bool cuda = q.is_cuda();
      if (cuda) torch::cuda::synchronize();
      const auto start = std::chrono::steady_clock::now();
      torch::Tensor out;
      const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
      const int D = int(q.size(3));
      if (!fresh) {
        // The dense path a user runs (the dense kernel on CUDA), as the plans' dense calls do,
        // so dense and plan rows are timed and rounded alike.
        out = run_dense_attention(q, k, v, AttentionImpl::Kernels);
        ++result.stats.dense_calls;
        vr.predicted_ms += cost_.dense_ms(N, H, D, B);
      } else {
        const PlanRunStats before = fresh->stats();
        const bool refresh = fresh->refreshes(call);
        out = (*fresh)(call, q, k, v);
        const PlanRunStats& after = fresh->stats();
        const LayerCallCost& c = layer_cost[size_t(call.layer)];
        if (refresh) {
          vr.predicted_ms += double(B) * c.refresh_ms;
        } else if (after.dense_calls > before.dense_calls) {
          vr.predicted_ms += cost_.dense_ms(N, H, D, B);
        } else if (!layer_online[size_t(call.layer)]) {
          // A layer of dense rules is priced as a dense call here too (layer_call_cost).
          vr.predicted_ms += double(B) * c.sparse_ms;
        } else {
          const double density = after.sparse_density_sum - before.sparse_density_sum;
          vr.predicted_ms +=
              double(B * H) * cost_.sparse_head_density_ms(fresh->geometry(), D, density);
          if (after.reselections > before.reselections) {
            int online = 0;
            for (const HeadRule& r : fresh->plan().layers[size_t(call.layer)])
              online += r.kind == RuleKind::Online;
            vr.predicted_ms += double(B * online) * cost_.dense_ms(N, 1, D) *
                               (cost_.mass_over_dense + cost_.selection_over_dense);
          }
        }
      }
      if (cuda) torch::cuda::synchronize();
      vr.measured_ms +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      return out;
    };
    if (fresh) so.token_order = fresh->stream_order(model.device);
    vr.video = sample_video(model, so, attention, [&](int, int) {
      if (on_step) on_step();
    });
    if (fresh) add_stats(result.stats, fresh->stats());
    result.predicted_ms += vr.predicted_ms / double(cases_.size());
    result.measured_ms += vr.measured_ms / double(cases_.size());
    result.runs.push_back(std::move(vr));
  }
  return result;
}

const FidelityResult& FidelityRunner::dense() {
  if (!dense_done_) {
    dense_ = run(model_, nullptr);
    for (const VideoRun& r : dense_.runs) dense_.quality.push_back(compare(r.video, r.video));
    summarize_quality(dense_);
    dense_done_ = true;
  }
  return dense_;
}

void FidelityRunner::check_plan(const Plan& plan, const std::string& name) const {
  const WanConfig& config = model_.config;
  const ModelInfo info{model_name, config.num_layers, config.num_heads, config.head_dim()};
  auto problems = check_plan_matches_model(plan, info);
  const Grid grid = token_grid(config, options_.frames, options_.height, options_.width);
  for (auto& e : check_plan_matches_grid(plan, grid, TextLayout{})) problems.push_back(std::move(e));
  if (!problems.empty()) {
    std::string text;
    for (const auto& e : problems) text += (text.empty() ? "" : "; ") + e;
    throw std::invalid_argument(name + ": " + text);
  }
}

FidelityResult FidelityRunner::run_plan(const Plan& plan) {
  check_plan(plan, "plan");
  const FidelityResult& ref = dense();
  PlanBackend backend(plan);
  FidelityResult result = run(model_, &backend);
  for (size_t i = 0; i < result.runs.size(); ++i)
    result.quality.push_back(compare(ref.runs[i].video, result.runs[i].video));
  summarize_quality(result);
  return result;
}

FidelityResult FidelityRunner::run_dense_model(const WanModel& other) {
  const FidelityResult& ref = dense();
  FidelityResult result = run(other, nullptr);
  for (size_t i = 0; i < result.runs.size(); ++i)
    result.quality.push_back(compare(ref.runs[i].video, result.runs[i].video));
  summarize_quality(result);
  return result;
}

}  // namespace sparseplan
