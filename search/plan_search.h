// The whole-plan search: for every layer and head, the rule that keeps the recall target on
// every captured sample at the lowest density, chosen among
//  - window rules (window_search.h), cheap to run and independent of the input;
//  - static blocks (per query block a fixed key-block list) when they save enough over windows;
//  - online selection when the blocks a head needs change between prompts and selecting per
//    input costs much less than any static rule;
//  - dense when nothing saves enough.
// Every tile shape the captures hold is tried (a plan has one tile shape); the cheapest plan
// wins, its cost counting padded work (plan/padding_cost.h: mean density x the padding's work
// factor), so a tile shape that divides the grid wins over one that pads at equal density. In density-budget mode, window rules at a ladder of recall levels are priced per head
// and budget_allocation.h spreads the budget. Heads run on std::threads; results are stored by
// head, so the plan is the same for the same inputs whatever the scheduling.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "analyzer/mass_source.h"
#include "search/window_search.h"

namespace sparseplan {

struct PlanSearchOptions {
  double target_recall = 0.9;   // recall mode (when density_budget <= 0)
  double density_budget = -1.0; // budget mode: mean density over heads, in (0, 1]
  double margin = 0.0;          // searched target = target_recall + margin (held-out headroom)
  std::vector<std::array<int, 3>> tiles;  // candidates; empty: every tile of the captures
  bool allow_blocks = true;
  bool allow_online = true;
  // A head "varies" when the prompt-to-prompt overlap of its 90% oracle sets is below
  // online_max_overlap (checked when its window density exceeds online_min_static). Varying
  // heads never get static blocks (they would be fitted to the captured prompts only) and go
  // online when that costs less than online_advantage x the window density.
  double online_max_overlap = 0.5;
  double online_min_static = 0.15;
  double online_advantage = 0.6;
  double blocks_advantage = 0.5;    // blocks only when density < this x window density
  double dense_above = 0.9;         // heads needing more density than this run dense
  int threads = 2;
  WindowSearchOptions window;
  std::function<void()> progress;   // after every (tile, layer, head)
};

struct HeadSearchResult {
  HeadRule rule;  // with stats filled in
  double window_density = -1.0;
  double blocks_density = -1.0;   // < 0: not computed
  double online_density = -1.0;
  double prompt_overlap = -1.0;   // mean Jaccard of the 90% oracle sets across prompts
};

struct TileResult {
  std::array<int, 3> tile{0, 0, 0};
  double mean_density = 0.0;
  double lowest_recall = 0.0;
  double padded_fraction = 0.0;  // padding over model tokens
  double cost = 0.0;             // mean density x (slots / tokens)^2: work over dense attention
};

struct PlanSearchResult {
  Plan plan;
  std::vector<std::vector<HeadSearchResult>> heads;  // [layer][head], for the chosen tile
  std::vector<TileResult> tiles;                     // every tile tried
};

// Throws std::invalid_argument for bad options (target outside (0, 1], budget outside (0, 1],
// a candidate tile the captures do not hold).
PlanSearchResult search_plan(const MassSource& source, const PlanSearchOptions& options);

// Static blocks: per query block a key-block list shared by every sample, chosen greedily by
// mean weighted mass until every sample reaches `target`. The search stops at `max_density`
// (the result then falls short of the target: the caller would not use it anyway).
struct BlocksChoice {
  BlocksRule rule;
  double density = 1.0;
  std::vector<double> recall;  // per sample
};
BlocksChoice search_blocks_rule(const TileGeometry& geometry, const HeadMass& mass, double target,
                                double max_density = 1.0);

// Mean Jaccard overlap of the per-query-block oracle sets at `recall` between samples of
// different prompts at the same step (between all pairs of samples with a single prompt).
double prompt_overlap(const TileGeometry& geometry, const HeadMass& mass,
                      const std::vector<int>& sample_prompt, const std::vector<int>& sample_step,
                      double recall = 0.9);

// Recall levels priced per head in budget mode.
const std::vector<double>& budget_recall_levels();

}  // namespace sparseplan
