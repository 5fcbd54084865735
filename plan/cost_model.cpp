#include "plan/cost_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "plan/block_layout.h"
#include "plan/query_pairs.h"

namespace sparseplan {
namespace {

// 128x128 blocks, Wan2.1-1.3B 480p, random masks: time / (density x dense time).
constexpr std::array<std::array<double, 2>, 5> kBlock128 = {{
    {1.0, 1.004}, {0.5, 1.027}, {0.25, 1.065}, {0.125, 1.095}, {0.0625, 1.22}}};

}  // namespace

double AttentionCostModel::dense_ms(int64_t tokens, int64_t heads, int head_dim,
                                    int64_t batch) const {
  const double flops = 4.0 * double(tokens) * double(tokens) * head_dim * double(heads) * batch;
  return flops / (dense_tflops * 1e12) * 1e3;
}

double AttentionCostModel::sparse_factor(int block_size, double density) const {
  double f = kBlock128.back()[1];
  if (density >= kBlock128.front()[0]) {
    f = kBlock128.front()[1];
  } else {
    for (size_t i = 1; i < kBlock128.size(); ++i) {
      const double hi = kBlock128[i - 1][0], lo = kBlock128[i][0];
      if (density >= lo) {
        const double t = std::log2(hi / std::max(density, 1e-12)) / std::log2(hi / lo);
        f = kBlock128[i - 1][1] + t * (kBlock128[i][1] - kBlock128[i - 1][1]);
        break;
      }
    }
  }
  // No CUDA kernel runs blocks below 64 tokens; they are priced as 64-token blocks.
  return block_size < 128 ? f * block64_factor : f;
}

double AttentionCostModel::sparse_head_ms(const TileGeometry& g, int head_dim,
                                          double kept_pairs) const {
  const double all = double(g.total_blocks) * g.total_blocks;
  const double density = all > 0 ? kept_pairs / all : 0.0;
  const double flops = 4.0 * kept_pairs * double(g.block_size) * g.block_size * head_dim;
  return flops / (dense_tflops * 1e12) * 1e3 * sparse_factor(g.block_size, density);
}

double AttentionCostModel::sparse_head_density_ms(const TileGeometry& g, int head_dim,
                                                  double density) const {
  return sparse_head_ms(g, head_dim, density * double(g.total_blocks) * g.total_blocks);
}

double AttentionCostModel::paired_head_ms(const TileGeometry& g, int head_dim,
                                          int64_t stages) const {
  const double all = double(g.total_blocks) * g.total_blocks;
  const double pairs = 4.0 * double(stages);  // 64 x 64 block pairs a 128 x 128 stage computes
  const double flops = 4.0 * pairs * double(g.block_size) * g.block_size * head_dim;
  return flops / (dense_tflops * 1e12) * 1e3 * sparse_factor(128, all > 0 ? pairs / all : 0.0);
}

double AttentionCostModel::selecting_head_ms(int64_t tokens, int head_dim) const {
  return dense_ms(tokens, 1, head_dim) * (1.0 + mass_over_dense + selection_over_dense);
}

double head_price_density(const TileGeometry& geometry, const HeadRule& rule) {
  switch (rule.kind) {
    case RuleKind::Dense:
      return 1.0;
    case RuleKind::Online:
      return rule.stats && rule.stats->density >= 0 ? rule.stats->density
                                                    : rule.online.max_density;
    case RuleKind::Window:
    case RuleKind::Blocks:
      break;
  }
  return compile_head_layout(geometry, rule).density();
}

namespace {

// One head on a sparse step: the density it is priced at, its layout's time alone and with
// `pooled` added (one compile and one pair order per head: calibration prices many plans).
struct HeadPrice {
  double kept = 0.0, layout_ms = 0.0, step_ms = 0.0;
};

HeadPrice head_price(const TileGeometry& g, int head_dim, const HeadRule& rule, double pooled,
                     const AttentionCostModel& model) {
  HeadPrice h;
  const bool static_layout = rule.kind == RuleKind::Window || rule.kind == RuleKind::Blocks;
  if (g.block_size != 64 || !static_layout) {
    h.kept = head_price_density(g, rule);
    h.layout_ms = model.sparse_head_density_ms(g, head_dim, h.kept);
    h.step_ms = model.sparse_head_density_ms(
        g, head_dim, rule.kind == RuleKind::Dense ? 1.0 : h.kept + pooled);
    return h;
  }
  const BlockLayout layout = compile_head_layout(g, rule);
  h.kept = layout.density();
  h.layout_ms =
      model.paired_head_ms(g, head_dim, paired_stages(layout, pair_query_blocks(layout, g)));
  // Pooled keys add to every row alike, priced in proportion to the kept work.
  h.step_ms = h.kept > 0 ? h.layout_ms * (h.kept + pooled) / h.kept
                         : model.sparse_head_density_ms(g, head_dim, pooled);
  return h;
}

}  // namespace

double sparse_step_head_ms(const TileGeometry& g, int head_dim, const HeadRule& rule,
                           double pooled, const AttentionCostModel& model) {
  return head_price(g, head_dim, rule, pooled, model).step_ms;
}

LayerCallCost layer_call_cost(const TileGeometry& g, int head_dim,
                              const std::vector<HeadRule>& heads, Compensation compensation,
                              const AttentionCostModel& model) {
  LayerCallCost c;
  const bool all_dense = std::all_of(heads.begin(), heads.end(),
                                     [](const HeadRule& r) { return r.kind == RuleKind::Dense; });
  if (all_dense) {
    c.sparse_ms = c.refresh_ms =
        model.dense_ms(g.sequence_tokens(), int64_t(heads.size()), head_dim);
    return c;
  }
  // Pooled compensation adds one key per block to every query row of a sparse head.
  const double pooled =
      compensation == Compensation::PooledKV ? 1.0 / double(g.block_size) : 0.0;
  for (const HeadRule& r : heads) {
    const HeadPrice h = head_price(g, head_dim, r, pooled, model);
    c.sparse_ms += h.step_ms;
    if (r.kind == RuleKind::Online)
      c.select_extra_ms += model.selecting_head_ms(g.sequence_tokens(), head_dim) - h.step_ms;
    c.refresh_ms += h.layout_ms +
                    model.sparse_head_density_ms(g, head_dim, std::max(0.0, 1.0 - h.kept));
  }
  return c;
}

StepCounts count_steps(const Plan& plan, int steps) {
  const std::set<int> dense_steps(plan.schedule.dense_steps.begin(),
                                  plan.schedule.dense_steps.end());
  const std::set<int> reselect(plan.schedule.reselect_steps.begin(),
                               plan.schedule.reselect_steps.end());
  StepCounts n;
  bool selected = false;
  for (int s = 0; s < steps; ++s) {
    if (refreshes_residual_cache(plan, s)) {
      ++n.refresh;
    } else if (s < plan.schedule.warmup_steps || dense_steps.count(s)) {
      ++n.dense;
    } else {
      ++n.sparse;
      if (!selected || reselect.count(s) > 0) ++n.selecting;
      selected = true;
    }
  }
  return n;
}

PlanCost predict_plan_cost(const Plan& plan, int steps, int branches,
                           const AttentionCostModel& model) {
  const TileGeometry g = make_tile_geometry(plan);
  const int d = plan.model.head_dim;
  const double dense_call = model.dense_ms(g.sequence_tokens(), plan.model.heads, d);
  const StepCounts n = count_steps(plan, steps);
  PlanCost cost;
  cost.dense_ms = dense_call * double(steps) * branches * double(plan.layers.size());
  for (const std::vector<HeadRule>& heads : plan.layers) {
    const LayerCallCost c = layer_call_cost(g, d, heads, plan.compensation, model);
    cost.plan_ms += branches * (n.dense * dense_call + n.refresh * c.refresh_ms +
                                n.sparse * c.sparse_ms + n.selecting * c.select_extra_ms);
  }
  return cost;
}

}  // namespace sparseplan
