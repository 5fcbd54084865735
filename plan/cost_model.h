// Predicted attention time on the Hopper kernels, the one place their measured costs live
// (bench/RESULTS.md, "Attention kernels"). Plans are priced by this, not by raw density: a
// 64-token block costs more per FLOP than a 128-token one, padded blocks of partial tiles cost
// as much as full ones, and online heads pay dense attention plus block mass when they select.
//  - dense: 4 N^2 D FLOPs per head at dense_tflops (our dense kernel: 607-628 TFLOP/s);
//  - block-sparse: 4 bs^2 D FLOPs per kept block pair (padding included) at dense_tflops divided
//    by the measured slow-down of 128-token blocks at that density (1.00 at d = 1 to 1.22 at
//    d = 1/16); 64-token static layouts by the 128 x 128 stages their paired query tiles walk
//    in the runner's pair order (plan/query_pairs.h), each at the 128-token price, since the
//    paired kernels' time follows their stages (bench/RESULTS.md, "the fill"); 64-token layouts
//    not known ahead (online heads) at block64_factor x the 128-token price (smaller blocks,
//    which only the CPU path runs, are priced as 64-token ones);
//  - online selection: block mass from the cached LSE costs mass_over_dense of a dense head.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/plan.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

struct AttentionCostModel {
  double dense_tflops = 620.0;
  // 64-token blocks over 128-token ones at equal density where the layout is not known ahead:
  // the paired kernels reach 0.78-0.92 of the 128-token TFLOP/s on windows and 0.52-0.60
  // (unpaired) on random masks (bench/RESULTS.md, tenth session); online selections lie between.
  double block64_factor = 1.4;
  double mass_over_dense = 0.6;   // block mass from the LSE / dense attention
  double selection_over_dense = 0.02;

  // Milliseconds of one dense call: `heads` heads of `tokens` tokens, batch `batch`.
  double dense_ms(int64_t tokens, int64_t heads, int head_dim, int64_t batch = 1) const;
  // Slow-down of block-sparse attention over density x dense, for this block size and density.
  double sparse_factor(int block_size, double density) const;
  // One head of one call with `kept_pairs` (query block, key block) pairs over the padded
  // sequence of `geometry`.
  double sparse_head_ms(const TileGeometry& geometry, int head_dim, double kept_pairs) const;
  // One head at `density` of the padded blocks.
  double sparse_head_density_ms(const TileGeometry& geometry, int head_dim, double density) const;
  // One head with 64-token blocks whose paired tiles walk `stages` 128 x 128 stages.
  double paired_head_ms(const TileGeometry& geometry, int head_dim, int64_t stages) const;
  // Extra time of an online head at a call that selects: dense attention + block mass +
  // selection, instead of its sparse attention.
  double selecting_head_ms(int64_t tokens, int head_dim) const;
};

// Density a head is priced at on sparse steps: compiled layouts for static rules, the
// captured mean (stats.density) for online ones (max_density when unknown), 1 for dense.
double head_price_density(const TileGeometry& geometry, const HeadRule& rule);

// One head's attention on a sparse step (batch 1): a 64-token static layout by its paired
// stages, any other head at its price density; `pooled` the density pooled compensation adds.
double sparse_step_head_ms(const TileGeometry& geometry, int head_dim, const HeadRule& rule,
                           double pooled, const AttentionCostModel& model = {});

struct PlanCost {
  double dense_ms = 0.0;      // the same run with dense attention everywhere
  double plan_ms = 0.0;       // the plan's predicted attention time
  double fraction() const { return dense_ms > 0 ? plan_ms / dense_ms : 0.0; }
};

// One attention call of one layer (all its heads, batch 1), by how the step runs it.
struct LayerCallCost {
  double sparse_ms = 0.0;        // a sparse step
  double select_extra_ms = 0.0;  // added at a step where its online heads select
  double refresh_ms = 0.0;       // a residual-cache refresh: each sparse head's layout and its
                                 // complement (dense work in two block-sparse calls)
};
LayerCallCost layer_call_cost(const TileGeometry& geometry, int head_dim,
                              const std::vector<HeadRule>& heads, Compensation compensation,
                              const AttentionCostModel& model = {});

// How many of a generation's steps run dense, refresh the residual cache, run sparse, and of
// those select online heads' blocks (every sparse step of a plan is priced as one of these).
struct StepCounts {
  int dense = 0;
  int refresh = 0;
  int sparse = 0;
  int selecting = 0;  // among the sparse steps
};
StepCounts count_steps(const Plan& plan, int steps);

// Predicted attention time of one generation: `steps` sampling steps, `branches` attention
// calls per layer and step (2 with classifier-free guidance), batch 1. Warm-up and dense steps
// run dense; online heads select at reselect steps and at their first sparse step. With the
// residual cache, the last warm-up step, dense steps and refresh steps run each sparse head's
// layout and its complement (dense work in two block-sparse calls).
PlanCost predict_plan_cost(const Plan& plan, int steps, int branches,
                           const AttentionCostModel& model = {});

}  // namespace sparseplan
