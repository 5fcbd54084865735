// Calibrated search: the cheapest plan whose video stays within a quality target of dense
// sampling (PSNR on calibration prompts), or the best video within a speed target (predicted
// attention time as a fraction of dense). One loop chooses the dense warm-up steps, per layer
// how much recall or density its heads get (and through search_plan each head's rule: window,
// static blocks, online or dense), the residual cache's refresh interval, and the re-selection
// steps of online heads.
//
// Model runs are few; captures rank everything else:
//  1. per level of a ladder (recall targets, then mean-density budgets), search_plan gives
//     every head its rule (one tile shape); each layer at each level has a predicted time per
//     kind of call (cost_model.h: sparse, selecting, refresh) and a dropped attention mass on
//     the captures (1 - mean recall over its heads);
//  2. sensitivity: one run per layer with only that layer sparse at the reference level and
//     the reference warm-up measures the video error (MSE against dense) it causes alone;
//  3. schedule: with every layer at the reference level, one run per warm-up candidate (at the
//     reference refresh interval) and one per refresh interval (at the reference warm-up) give
//     how the error scales with each; a pair scales as the product of the two;
//  4. predicted error of a candidate = schedule scale x sum over layers of sensitivity x
//     dropped mass / dropped mass at the reference level; per schedule, the allocation spends
//     time (the whole generation's, its steps counted by kind) on the layers where it buys the
//     most error (a layer that matters gets more recall);
//  5. the best candidate is run; the ratio of measured to predicted error corrects the model
//     and the allocation is redone until the result repeats or the run budget ends; online
//     heads then try fewer re-selections.
// The evaluator runs the real model; tests can plant one.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "analyzer/mass_source.h"
#include "plan/cost_model.h"
#include "plan/plan.h"
#include "search/plan_search.h"

namespace sparseplan {

// One level of one layer: time per sparse step (all branches) and predicted error (MSE).
struct LayerLevel {
  double cost = 0.0;
  double error = 0.0;
};

struct LayerAllocation {
  std::vector<int> level;  // per layer, index into its levels
  double cost = 0.0;
  double error = 0.0;
  bool feasible = false;   // the budget was met
};

// levels[l] ordered from cheapest to dearest (the last is usually dense, error 0).
// Quality mode: the cheapest choice whose summed error is <= error_budget (greedy on error
// removed per unit of time, any jump of levels allowed, so non-convex ladders work).
LayerAllocation allocate_for_error(const std::vector<std::vector<LayerLevel>>& levels,
                                   double error_budget);
// Speed mode: the lowest summed error whose summed cost is <= cost_budget.
LayerAllocation allocate_for_cost(const std::vector<std::vector<LayerLevel>>& levels,
                                  double cost_budget);

// Quality of one plan on the calibration cases, as the evaluator measured it.
struct CalibrationScore {
  double psnr_mean = 0.0;   // mean over cases of PSNR against dense
  double psnr_worst = 0.0;
  double time_fraction = 0.0;  // predicted attention time / dense, from the run
  double density = 0.0;        // overall attention density, dense calls counting 1
};
using PlanEvaluator = std::function<CalibrationScore(const Plan& plan)>;

struct CalibrationOptions {
  double target_psnr = -1.0;           // quality mode when > 0
  double target_time_fraction = -1.0;  // speed mode when in (0, 1]
  int steps = 30;
  int branches = 2;                    // attention calls per layer and step (guidance: 2)
  std::vector<double> recall_levels{0.3, 0.45, 0.6, 0.75, 0.85, 0.9, 0.95, 0.98};
  // Mean densities over heads (search's budget mode): sparser levels than recall asks for.
  std::vector<double> density_levels{0.08, 0.12, 0.18, 0.25, 0.35};
  double reference_recall = 0.85;      // the level the sensitivities are measured at
  std::vector<int> warmups;            // empty: 0, 10%, 20%, 30% of the steps
  int reselect_every = 5;              // online heads re-select every this many sparse steps
  // What the plans do about dropped blocks. With residual_cache the schedule candidates are
  // every (warm-up, refresh interval) pair: an interval K > 0 adds a refresh step every K
  // steps after the warm-up (priced as the layout plus its complement), 0 refreshes at the
  // last warm-up step only, kNoCache gives a plan without the cache. Empty: {0}. Intervals
  // without residual_cache are refused (they would be ignored).
  static constexpr int kNoCache = -1;
  Compensation compensation = Compensation::None;
  std::vector<int> refresh_every;
  int max_verify = 5;                  // runs of allocated candidates
  // A plan counts for a quality target only when it is predicted faster than this fraction of
  // dense attention (a plan that saves nothing is dense attention by another name).
  double max_time_fraction = 0.99;
  PlanSearchOptions search;            // tiles (first candidate used), threads, rule kinds
  AttentionCostModel cost;
  std::function<void(const std::string&)> log;
};

struct CalibrationTrial {
  std::string what;
  int warmup = 0;
  int refresh_every = 0;
  // Per layer, index into the levels: the sorted recall levels, then the sorted density levels;
  // their count stands for dense.
  std::vector<int> levels;
  double predicted_error = -1.0;
  CalibrationScore score;
  bool meets = false;
};

struct CalibrationResult {
  bool met = false;
  Plan plan;                // the best plan found (met or not), with search.calibration filled
  CalibrationScore score;
  std::vector<double> sensitivity;  // per layer: MSE of that layer alone at the reference level
  std::vector<CalibrationTrial> trials;
  int model_runs = 0;
  std::string message;      // why nothing met the target, when nothing did
};

// Throws std::invalid_argument for bad options (neither or both targets, a target out of range,
// captures lacking layers, no recall level). The returned plan's search.calibration holds the
// targets and what was reached; the caller fills prompts, seeds, video and guidance.
CalibrationResult calibrate_plan(const MassSource& source, const CalibrationOptions& options,
                                 const PlanEvaluator& evaluate);

}  // namespace sparseplan
