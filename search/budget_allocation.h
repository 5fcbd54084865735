// Density-budget mode: given, per head, the rules it could use (each with a density and the
// recall it keeps on its worst sample), pick one per head so the mean density stays within the
// budget and the lowest recall over heads is as high as possible; budget left over then goes,
// step by step, to the head whose recall is lowest. Heads that need little thus give budget to
// heads that need more.
#pragma once

#include <vector>

namespace sparseplan {

struct BudgetOption {
  double density = 0.0;
  double recall = 0.0;
};

struct BudgetAllocation {
  std::vector<int> choice;  // [heads]: index into that head's options
  double mean_density = 0.0;
  double lowest_recall = 0.0;
  bool within_budget = true;  // false when even every head's cheapest option exceeds it
};

// options[h] must be non-empty. Options need not be sorted; dominated ones are never chosen.
// Deterministic. Throws std::invalid_argument for an empty head or a budget outside (0, 1].
BudgetAllocation allocate_density_budget(const std::vector<std::vector<BudgetOption>>& options,
                                         double mean_density_budget);

}  // namespace sparseplan
