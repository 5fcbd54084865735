// Scores plans on captures (ideally ones they were not searched on): per head density, mean and
// worst recall over samples, and the recall an oracle reaches at the same density by choosing
// each query block's top-k key blocks for every input.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "plan/tile_geometry.h"
#include "analyzer/mass_source.h"
#include "analyzer/recall.h"

namespace sparseplan {

struct RuleScore {
  double density = 0.0;        // mean over samples (online rules select per sample)
  std::vector<double> recall;  // per sample
  double worst() const;
  double mean() const;
};

// Window and blocks rules are compiled with compile_head_layout; online rules take, per sample
// and query block, the fewest key blocks reaching their recall within their density bounds.
RuleScore score_rule(const TileGeometry& geometry, const HeadRule& rule, const HeadMass& mass);

struct HeadScore {
  RuleKind kind = RuleKind::Dense;
  double density = 0.0;
  double mean_recall = 0.0;
  double worst_recall = 0.0;
  double oracle_recall = -1.0;  // per-input top-k at the same density; < 0 when not computed
  bool scored = false;          // false for layers the captures do not hold
};

struct PlanScore {
  std::string name;
  std::array<int, 3> tile{0, 0, 0};
  std::vector<std::vector<HeadScore>> heads;  // [layer][head]
  // Means over the heads of captured layers.
  double mean_density = 0.0;
  double mean_recall = 0.0;    // over heads of the per-head mean
  double worst_recall = 0.0;   // lowest per-head worst
  double oracle_recall = -1.0;
  // Share of heads whose worst recall is at least target - tolerance.
  double share_within(double target, double tolerance) const;
};

struct CompareOptions {
  bool oracle = true;
  int threads = 2;
  std::function<void()> progress;  // after every head
};

// Throws std::invalid_argument naming the mismatch when the plan is for another model, grid,
// text layout or block size than the captures, or uses a tile shape they do not hold.
void check_plan_matches_source(const Plan& plan, const SourceInfo& info, const std::string& name);

PlanScore score_plan(const Plan& plan, const std::string& name, const MassSource& source,
                     const CompareOptions& options = {});
// Several plans in one pass over the heads: each head's mass is read once per tile shape.
std::vector<PlanScore> score_plans(const std::vector<Plan>& plans,
                                   const std::vector<std::string>& names,
                                   const MassSource& source, const CompareOptions& options = {});

// Fixed-pattern plans for the source's grid, each kind as a family of window sizes, scored so
// their recall can be read at any density. Only tile shapes the source holds are usable, so the
// baselines use `tile`.
struct BaselineFamily {
  std::string name;
  std::vector<PlanScore> members;  // ascending density
  // Mean recall linearly interpolated at `density` (clamped to the family's range); the flag
  // tells whether `density` lay inside that range.
  double recall_at(double density, bool* inside = nullptr) const;
};
std::vector<BaselineFamily> score_baselines(const MassSource& source,
                                            const std::array<int, 3>& tile,
                                            const CompareOptions& options = {});

// Plain-text (or Markdown) table of plan scores, one row per plan.
std::string comparison_table(const std::vector<PlanScore>& scores, bool markdown);

}  // namespace sparseplan
