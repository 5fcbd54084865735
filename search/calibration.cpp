#include "search/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "base/video_metrics.h"

namespace sparseplan {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Greedy over level jumps: repeatedly take, among all layers and all dearer levels, the jump
// with the best ratio of gain to price, as long as `allowed` accepts the jump.
LayerAllocation greedy(const std::vector<std::vector<LayerLevel>>& levels,
                       const std::function<bool(const LayerAllocation&)>& done,
                       const std::function<bool(const LayerAllocation&, double dcost)>& allowed) {
  LayerAllocation a;
  a.level.assign(levels.size(), 0);
  for (size_t l = 0; l < levels.size(); ++l) {
    if (levels[l].empty()) throw std::invalid_argument("allocate: layer without levels");
    a.cost += levels[l][0].cost;
    a.error += levels[l][0].error;
  }
  while (!done(a)) {
    double best_ratio = -1.0;
    size_t best_l = 0;
    int best_k = -1;
    for (size_t l = 0; l < levels.size(); ++l) {
      const LayerLevel& cur = levels[l][size_t(a.level[l])];
      for (size_t k = size_t(a.level[l]) + 1; k < levels[l].size(); ++k) {
        const double gain = cur.error - levels[l][k].error;
        const double dcost = levels[l][k].cost - cur.cost;
        if (gain <= 0.0 || !allowed(a, dcost)) continue;
        const double ratio = dcost <= 0.0 ? kInf : gain / dcost;
        if (ratio > best_ratio) {
          best_ratio = ratio;
          best_l = l;
          best_k = int(k);
        }
      }
    }
    if (best_k < 0) break;
    const LayerLevel& cur = levels[best_l][size_t(a.level[best_l])];
    const LayerLevel& next = levels[best_l][size_t(best_k)];
    a.cost += next.cost - cur.cost;
    a.error += next.error - cur.error;
    a.level[best_l] = best_k;
  }
  return a;
}

// The per-layer rules the allocation chooses among: one plan per level (recall levels, then
// density levels), each layer's dropped mass and call cost per level; the last level is dense.
struct LevelSet {
  std::vector<std::string> names;                // "recall 0.85", "density 0.2", "dense"
  std::vector<Plan> plans;                       // one per level but dense
  std::vector<std::vector<double>> dropped;      // [level][layer]: 1 - mean head recall
  std::vector<std::vector<LayerCallCost>> cost;  // [level][layer]
};

double dropped_mass(const std::vector<HeadRule>& heads) {
  double sum = 0.0;
  for (const HeadRule& r : heads)
    if (r.kind != RuleKind::Dense && r.stats && r.stats->recall >= 0)
      sum += 1.0 - r.stats->recall;
  return heads.empty() ? 0.0 : sum / double(heads.size());
}

std::vector<HeadRule> dense_heads(int heads) { return std::vector<HeadRule>(size_t(heads)); }

bool has_online(const Plan& plan) {
  for (const auto& heads : plan.layers)
    for (const HeadRule& r : heads)
      if (r.kind == RuleKind::Online) return true;
  return false;
}

std::vector<int> reselect_schedule(int warmup, int steps, int every) {
  std::vector<int> out;
  if (every <= 0) return out;
  for (int s = warmup; s < steps; s += every) out.push_back(s);
  return out;
}

}  // namespace

LayerAllocation allocate_for_error(const std::vector<std::vector<LayerLevel>>& levels,
                                   double error_budget) {
  LayerAllocation a = greedy(
      levels, [&](const LayerAllocation& x) { return x.error <= error_budget; },
      [](const LayerAllocation&, double) { return true; });
  a.feasible = a.error <= error_budget;
  return a;
}

LayerAllocation allocate_for_cost(const std::vector<std::vector<LayerLevel>>& levels,
                                  double cost_budget) {
  LayerAllocation a = greedy(
      levels, [](const LayerAllocation&) { return false; },
      [&](const LayerAllocation& x, double dcost) { return x.cost + dcost <= cost_budget; });
  a.feasible = a.cost <= cost_budget;
  return a;
}

CalibrationResult calibrate_plan(const MassSource& source, const CalibrationOptions& o,
                                 const PlanEvaluator& evaluate) {
  const bool quality = o.target_psnr > 0;
  const bool speed = o.target_time_fraction > 0;
  if (quality == speed)
    throw std::invalid_argument("calibrate: give exactly one of a PSNR target and a time target");
  if (quality && !(o.target_psnr < CalibrationInfo::kMaxPsnr))
    throw std::invalid_argument("calibrate: --target-psnr must be below " +
                                fmt("%g", CalibrationInfo::kMaxPsnr) + " dB");
  if (speed && !(o.target_time_fraction <= 1.0))
    throw std::invalid_argument("calibrate: --target-time must be in (0, 1]");
  if (o.steps < 1) throw std::invalid_argument("calibrate: steps must be >= 1");
  if (o.recall_levels.empty()) throw std::invalid_argument("calibrate: no recall level");
  for (double r : o.recall_levels)
    if (!(r > 0 && r <= 1)) throw std::invalid_argument("calibrate: recall levels must be in (0, 1]");
  const SourceInfo& info = source.info();
  for (int l = 0; l < info.model.layers; ++l)
    if (!info.has_layer(l))
      throw std::invalid_argument("calibrate: the captures lack layer " + std::to_string(l) +
                                  "; capture every layer (--layers all)");
  const auto log = [&](const std::string& line) {
    if (o.log) o.log(line);
  };

  std::vector<double> recalls = o.recall_levels;
  std::sort(recalls.begin(), recalls.end());
  recalls.erase(std::unique(recalls.begin(), recalls.end()), recalls.end());
  const size_t ref = size_t(std::min_element(recalls.begin(), recalls.end(),
                                             [&](double a, double b) {
                                               return std::abs(a - o.reference_recall) <
                                                      std::abs(b - o.reference_recall);
                                             }) -
                            recalls.begin());
  std::vector<double> densities = o.density_levels;
  for (double d : densities)
    if (!(d > 0 && d <= 1))
      throw std::invalid_argument("calibrate: density levels must be in (0, 1]");
  std::sort(densities.begin(), densities.end());
  densities.erase(std::unique(densities.begin(), densities.end()), densities.end());
  std::vector<int> warmups = o.warmups;
  if (warmups.empty())
    for (double f : {0.0, 0.1, 0.2, 0.3}) warmups.push_back(int(std::lround(f * o.steps)));
  for (int w : warmups)
    if (w < 0 || w >= o.steps)
      throw std::invalid_argument("calibrate: warm-up " + std::to_string(w) +
                                  " must be in [0, steps)");
  std::sort(warmups.begin(), warmups.end());
  warmups.erase(std::unique(warmups.begin(), warmups.end()), warmups.end());
  const int w_ref = warmups[warmups.size() / 2];
  if (!o.refresh_every.empty() && o.compensation != Compensation::ResidualCache)
    throw std::invalid_argument("calibrate: refresh intervals need compensation residual_cache");
  std::vector<int> intervals = o.refresh_every;
  if (intervals.empty()) intervals = {0};
  for (int k : intervals)
    if (k < 0 && k != CalibrationOptions::kNoCache)
      throw std::invalid_argument("calibrate: refresh intervals must be >= 0");
  std::sort(intervals.begin(), intervals.end());
  intervals.erase(std::unique(intervals.begin(), intervals.end()), intervals.end());
  const int r_ref = intervals[intervals.size() / 2];
  struct ScheduleChoice {
    int warmup, refresh;
    bool operator<(const ScheduleChoice& b) const {
      return std::tie(warmup, refresh) < std::tie(b.warmup, b.refresh);
    }
  };
  std::vector<ScheduleChoice> schedules;
  for (int w : warmups)
    for (int k : intervals) schedules.push_back({w, k});

  // 1. Rules per level, one tile shape (the reference level's choice): per recall level the
  // cheapest rule per head keeping it, per density level the budget spread over heads where it
  // keeps the most recall (sparser than any recall level asks for: what a residual cache
  // makes usable).
  PlanSearchOptions so = o.search;
  so.density_budget = -1.0;
  so.margin = 0.0;
  so.target_recall = recalls[ref];
  log("search: rules at recall " + fmt("%.3f", recalls[ref]));
  const PlanSearchResult ref_result = search_plan(source, so);
  so.tiles = {ref_result.plan.tile};
  LevelSet ls;
  for (size_t k = 0; k < recalls.size(); ++k) {
    ls.names.push_back("recall " + fmt("%g", recalls[k]));
    if (k == ref) {
      ls.plans.push_back(ref_result.plan);
      continue;
    }
    so.target_recall = recalls[k];
    log("search: rules at recall " + fmt("%.3f", recalls[k]));
    ls.plans.push_back(search_plan(source, so).plan);
  }
  for (double d : densities) {
    so.density_budget = d;
    ls.names.push_back("density " + fmt("%g", d));
    log("search: rules at mean density " + fmt("%.3f", d));
    ls.plans.push_back(search_plan(source, so).plan);
  }
  ls.names.push_back("dense");
  const Plan& base = ref_result.plan;
  const TileGeometry geometry = make_tile_geometry(base);
  const size_t L = base.layers.size();
  const size_t dense_level = ls.plans.size();
  for (size_t k = 0; k <= dense_level; ++k) {
    std::vector<double> drop(L, 0.0);
    std::vector<LayerCallCost> cost(L);
    for (size_t l = 0; l < L; ++l) {
      const std::vector<HeadRule> heads =
          k == dense_level ? dense_heads(base.model.heads) : ls.plans[k].layers[l];
      drop[l] = dropped_mass(heads);
      cost[l] = layer_call_cost(geometry, base.model.head_dim, heads, o.compensation, o.cost);
    }
    ls.dropped.push_back(drop);
    ls.cost.push_back(cost);
  }

  const auto refresh_steps = [&](const ScheduleChoice& s) {
    std::vector<int> out;
    if (s.refresh <= 0) return out;  // intervals come only with residual_cache
    for (int t = s.warmup + s.refresh; t < o.steps; t += s.refresh) out.push_back(t);
    return out;
  };
  // The schedule of a candidate; online heads' re-selections only when it has online heads.
  const auto scheduled = [&](const ScheduleChoice& sc, int reselect_every) {
    Plan p = base;
    p.schedule = Schedule{};
    p.schedule.total_steps = o.steps;
    p.schedule.warmup_steps = sc.warmup;
    p.schedule.reselect_steps = reselect_schedule(sc.warmup, o.steps, reselect_every);
    p.compensation = sc.refresh == CalibrationOptions::kNoCache ? Compensation::None
                                                                : o.compensation;
    p.schedule.refresh_steps = refresh_steps(sc);
    return p;
  };
  const auto assemble = [&](const ScheduleChoice& sc, const std::vector<int>& levels,
                            int reselect_every) {
    Plan p = scheduled(sc, reselect_every);
    for (size_t l = 0; l < L; ++l)
      p.layers[l] = size_t(levels[l]) == dense_level ? dense_heads(base.model.heads)
                                                     : ls.plans[size_t(levels[l])].layers[l];
    if (!has_online(p)) p.schedule.reselect_steps.clear();
    SearchInfo si;
    si.tool = std::string("sparseplan calibrate");
    si.captures = info.captures;
    p.search = si;
    return p;
  };
  const double dense_call = ls.cost[dense_level][0].sparse_ms;
  const double dense_total = o.branches * o.steps * double(L) * dense_call;
  // Per layer, its levels as (time over the whole generation under schedule sc, predicted
  // error), cheapest first; order[l][i] is the level of row i.
  double cost_scale = 1.0;
  const auto level_table = [&](const ScheduleChoice& sc, const std::vector<double>& per_drop,
                               std::vector<std::vector<size_t>>& order) {
    const StepCounts n = count_steps(scheduled(sc, o.reselect_every), o.steps);
    std::vector<std::vector<LayerLevel>> table(L);
    order.assign(L, {});
    for (size_t l = 0; l < L; ++l) {
      std::vector<LayerLevel> row;
      for (size_t k = 0; k <= dense_level; ++k) {
        const LayerCallCost& c = ls.cost[k][l];
        const double ms = n.dense * dense_call + n.refresh * c.refresh_ms +
                          n.sparse * c.sparse_ms + n.selecting * c.select_extra_ms;
        row.push_back({cost_scale * o.branches * ms, per_drop[l] * ls.dropped[k][l]});
        order[l].push_back(k);
      }
      std::stable_sort(order[l].begin(), order[l].end(), [&](size_t x, size_t y) {
        return std::tie(row[x].cost, row[x].error) < std::tie(row[y].cost, row[y].error);
      });
      for (size_t k : order[l]) table[l].push_back(row[k]);
    }
    return table;
  };

  CalibrationResult result;
  const double target_mse = quality ? mse_from_psnr(o.target_psnr) : 0.0;
  const auto meets = [&](const CalibrationScore& s) {
    return quality ? s.psnr_mean >= o.target_psnr && s.time_fraction < o.max_time_fraction
                   : s.time_fraction <= o.target_time_fraction * (1.0 + 1e-9);
  };
  std::map<std::pair<ScheduleChoice, std::vector<int>>, size_t> tried;
  const auto run = [&](const std::string& what, const ScheduleChoice& sc,
                       const std::vector<int>& levels, double predicted_error,
                       int reselect_every) -> const CalibrationTrial& {
    CalibrationTrial t;
    t.what = what;
    t.warmup = sc.warmup;
    t.refresh_every = sc.refresh;
    t.levels = levels;
    t.predicted_error = predicted_error;
    t.score = evaluate(assemble(sc, levels, reselect_every));
    t.meets = meets(t.score);
    ++result.model_runs;
    const std::string refresh =
        o.compensation != Compensation::ResidualCache ? ""
        : sc.refresh > 0  ? ", refresh every " + std::to_string(sc.refresh)
        : sc.refresh == 0 ? ", no refresh"
                          : ", no residual cache";
    log(what + ": warm-up " + std::to_string(sc.warmup) + refresh + ", PSNR " +
        fmt("%.2f", t.score.psnr_mean) + " dB (worst " + fmt("%.2f", t.score.psnr_worst) +
        "), time " + fmt("%.3f", t.score.time_fraction) + " of dense, density " +
        fmt("%.3f", t.score.density));
    result.trials.push_back(t);
    return result.trials.back();
  };

  // 2. Sensitivity: each layer alone at the reference level.
  result.sensitivity.assign(L, 0.0);
  std::vector<int> levels(L, int(dense_level));
  for (size_t l = 0; l < L; ++l) {
    if (ls.dropped[ref][l] <= 0.0) continue;
    levels.assign(L, int(dense_level));
    levels[l] = int(ref);
    const CalibrationTrial& t =
        run("sensitivity of layer " + std::to_string(l), {w_ref, r_ref}, levels, -1.0,
            o.reselect_every);
    result.sensitivity[l] = mse_from_psnr(t.score.psnr_mean);
  }
  // Error per unit of dropped mass; layers that dropped nothing at the reference level borrow
  // the median of the others.
  std::vector<double> per_drop(L, 0.0), known;
  for (size_t l = 0; l < L; ++l)
    if (ls.dropped[ref][l] > 0.0) known.push_back(per_drop[l] = result.sensitivity[l] / ls.dropped[ref][l]);
  std::sort(known.begin(), known.end());
  const double median = known.empty() ? 0.0 : known[known.size() / 2];
  for (size_t l = 0; l < L; ++l)
    if (ls.dropped[ref][l] <= 0.0) per_drop[l] = median;
  const double sens_sum = std::accumulate(result.sensitivity.begin(), result.sensitivity.end(), 0.0);

  // 3. Schedule: every layer at the reference level.
  // Measured per warm-up at the reference interval and per interval at the reference warm-up;
  // the other pairs are taken as the product of the two effects (model runs: warm-ups +
  // intervals - 1, not their product).
  std::map<ScheduleChoice, double> measured_scale;
  for (const ScheduleChoice& sc : schedules) {
    if (sc.warmup != w_ref && sc.refresh != r_ref) continue;
    const std::vector<int> all_ref(L, int(ref));
    const CalibrationTrial& t = run("schedule", sc, all_ref, sens_sum, o.reselect_every);
    tried[{sc, all_ref}] = result.trials.size() - 1;
    const double m = mse_from_psnr(t.score.psnr_mean);
    measured_scale[sc] = sens_sum > 0 ? m / sens_sum : 1.0;
  }
  std::map<ScheduleChoice, double> scale;
  const double at_ref = measured_scale.at({w_ref, r_ref});
  for (const ScheduleChoice& sc : schedules) {
    const auto it = measured_scale.find(sc);
    scale[sc] = it != measured_scale.end() ? it->second
                : at_ref > 0 ? measured_scale.at({sc.warmup, r_ref}) *
                                   measured_scale.at({w_ref, sc.refresh}) / at_ref
                             : measured_scale.at({sc.warmup, r_ref});
  }

  // 4./5. Allocate, run, correct.
  double correction = 1.0;
  for (int iter = 0; iter < o.max_verify; ++iter) {
    std::optional<ScheduleChoice> best_sc;
    std::vector<int> best_levels;
    double best_total = kInf, best_error = kInf;
    for (const ScheduleChoice& sc : schedules) {
      const double g = scale[sc] * correction;
      std::vector<std::vector<size_t>> order;
      const auto table = level_table(sc, per_drop, order);
      const LayerAllocation a =
          quality ? allocate_for_error(table, g > 0 ? target_mse / g : kInf)
                  : allocate_for_cost(table, o.target_time_fraction * dense_total);
      if (!a.feasible) continue;
      const double err = g * a.error;
      if (quality ? a.cost < best_total : err < best_error) {
        best_sc = sc;
        best_levels.assign(L, 0);
        for (size_t l = 0; l < L; ++l) best_levels[l] = int(order[l][size_t(a.level[l])]);
        best_total = a.cost;
        best_error = err;
      }
    }
    if (!best_sc) {
      log("allocation: no candidate fits the target");
      break;
    }
    if (std::all_of(best_levels.begin(), best_levels.end(),
                    [&](int k) { return size_t(k) == dense_level; })) {
      log("allocation: only dense attention is predicted to reach the target");
      break;
    }
    if (tried.count({*best_sc, best_levels})) {
      log("allocation: converged");
      break;
    }
    const CalibrationTrial& t = run("candidate " + std::to_string(iter + 1), *best_sc,
                                    best_levels, best_error, o.reselect_every);
    tried[{*best_sc, best_levels}] = result.trials.size() - 1;
    if (speed && t.score.time_fraction > o.target_time_fraction) {
      // Online heads selected more than on the captures: charge the excess to every cost.
      cost_scale *= t.score.time_fraction / o.target_time_fraction;
      continue;
    }
    const double measured = mse_from_psnr(t.score.psnr_mean);
    if (best_error > 0 && measured > 0) correction *= measured / best_error;
    else if (measured > 0) correction *= 2.0;
    else if (quality) correction *= 0.5;
  }

  // The best trial: cheapest meeting (quality) or highest PSNR meeting (speed).
  int best = -1;
  for (size_t i = 0; i < result.trials.size(); ++i) {
    const CalibrationTrial& t = result.trials[i];
    if (!t.meets) continue;
    if (best < 0) {
      best = int(i);
      continue;
    }
    const CalibrationTrial& b = result.trials[size_t(best)];
    if (quality ? t.score.time_fraction < b.score.time_fraction
                : t.score.psnr_mean > b.score.psnr_mean)
      best = int(i);
  }
  // Online heads: one selection at the first sparse step instead of every reselect_every.
  if (best >= 0 && quality) {
    const CalibrationTrial b = result.trials[size_t(best)];
    const ScheduleChoice sc{b.warmup, b.refresh_every};
    if (has_online(assemble(sc, b.levels, o.reselect_every))) {
      const CalibrationTrial& t = run("select once", sc, b.levels, -1.0, 0);
      if (t.meets && t.score.time_fraction < b.score.time_fraction) best = int(result.trials.size() - 1);
    }
  }
  result.met = best >= 0;
  if (!result.met) {
    // Quality: the best PSNR among the plans that save time (any plan when none does).
    const auto saves = [&](const CalibrationTrial& t) {
      return t.score.time_fraction < o.max_time_fraction;
    };
    for (size_t i = 0; i < result.trials.size(); ++i) {
      const CalibrationTrial& t = result.trials[i];
      if (best < 0) {
        best = int(i);
        continue;
      }
      const CalibrationTrial& b = result.trials[size_t(best)];
      const bool better =
          quality ? (saves(t) && !saves(b)) ||
                        (saves(t) == saves(b) && t.score.psnr_mean > b.score.psnr_mean)
                  : t.score.time_fraction < b.score.time_fraction;
      if (better) best = int(i);
    }
    const CalibrationTrial& b = result.trials[size_t(best)];
    result.message =
        !quality ? "no plan meets the target: the cheapest found takes " +
                       fmt("%.3f", b.score.time_fraction) + " of dense attention time against " +
                       fmt("%.3f", o.target_time_fraction)
        : saves(b) ? "no plan meets the target: the best found faster than dense reaches " +
                         fmt("%.2f", b.score.psnr_mean) + " dB against " +
                         fmt("%.2f", o.target_psnr) + " dB (at " +
                         fmt("%.3f", b.score.time_fraction) +
                         " of dense attention time); only dense attention would do"
                   : "no plan meets the target: no plan tried is predicted faster than " +
                         fmt("%.2f", o.max_time_fraction) + " of dense attention";
  }
  const CalibrationTrial& chosen = result.trials[size_t(best)];
  const bool once = chosen.what == "select once";
  result.plan =
      assemble({chosen.warmup, chosen.refresh_every}, chosen.levels, once ? 0 : o.reselect_every);
  result.score = chosen.score;
  CalibrationInfo cal;
  cal.steps = o.steps;
  cal.target_psnr = quality ? o.target_psnr : -1.0;
  cal.target_time_fraction = speed ? o.target_time_fraction : -1.0;
  cal.psnr_mean = chosen.score.psnr_mean;
  cal.psnr_worst = chosen.score.psnr_worst;
  cal.time_fraction = chosen.score.time_fraction;
  cal.model_runs = result.model_runs;
  result.plan.search->calibration = cal;
  std::string levels_text;
  for (int k : chosen.levels) levels_text += (levels_text.empty() ? "" : ", ") + ls.names[size_t(k)];
  const std::string refresh =
      o.compensation != Compensation::ResidualCache || chosen.refresh_every < 0 ? ""
      : chosen.refresh_every > 0 ? ", residual cache refreshed every " +
                                       std::to_string(chosen.refresh_every) + " steps"
                                 : ", residual cache";
  result.plan.description = "calibrated: warm-up " + std::to_string(chosen.warmup) + refresh +
                            ", layers " + levels_text + "; PSNR " +
                            fmt("%.2f", chosen.score.psnr_mean) + " dB, attention time " +
                            fmt("%.3f", chosen.score.time_fraction) + " of dense";
  return result;
}

}  // namespace sparseplan
