#include "search/budget_allocation.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sparseplan {
namespace {

// Per head, indices of its Pareto options (density ascending, recall strictly ascending).
std::vector<int> frontier(const std::vector<BudgetOption>& o) {
  std::vector<int> idx(o.size());
  for (size_t i = 0; i < o.size(); ++i) idx[i] = int(i);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) {
    if (o[size_t(a)].density != o[size_t(b)].density) return o[size_t(a)].density < o[size_t(b)].density;
    if (o[size_t(a)].recall != o[size_t(b)].recall) return o[size_t(a)].recall > o[size_t(b)].recall;
    return a < b;
  });
  std::vector<int> front;
  for (int i : idx)
    if (front.empty() || o[size_t(i)].recall > o[size_t(front.back())].recall) front.push_back(i);
  return front;
}

}  // namespace

BudgetAllocation allocate_density_budget(const std::vector<std::vector<BudgetOption>>& options,
                                         double budget) {
  if (!(budget > 0.0 && budget <= 1.0))
    throw std::invalid_argument("density budget " + std::to_string(budget) + " outside (0, 1]");
  const size_t H = options.size();
  std::vector<std::vector<int>> fronts(H);
  for (size_t h = 0; h < H; ++h) {
    if (options[h].empty())
      throw std::invalid_argument("budget allocation: head " + std::to_string(h) + " has no options");
    fronts[h] = frontier(options[h]);
  }
  const double total = budget * double(H);
  const auto opt = [&](size_t h, int pos) { return options[h][size_t(fronts[h][size_t(pos)])]; };

  // Cheapest positions reaching each candidate level; the highest level within budget wins.
  std::vector<double> levels;
  for (size_t h = 0; h < H; ++h)
    for (size_t p = 0; p < fronts[h].size(); ++p) levels.push_back(opt(h, int(p)).recall);
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());

  std::vector<int> pos(H, 0);
  const auto positions_for = [&](double level, std::vector<int>& out) {
    double used = 0.0;
    for (size_t h = 0; h < H; ++h) {
      int p = 0;
      const int n = int(fronts[h].size());
      while (p + 1 < n && opt(h, p).recall < level) ++p;
      out[h] = p;
      used += opt(h, p).density;
    }
    return used;
  };
  size_t lo = 0, hi = levels.size();  // levels[lo-1] known feasible; binary search on the rest
  std::vector<int> trial(H);
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (positions_for(levels[mid], trial) <= total + 1e-12)
      lo = mid + 1;
    else
      hi = mid;
  }
  BudgetAllocation result;
  double used = lo == 0 ? positions_for(-1.0, pos) : positions_for(levels[lo - 1], pos);
  result.within_budget = used <= total + 1e-12;

  // Leftover: raise the lowest head while its next option still fits.
  while (result.within_budget) {
    size_t pick = H;
    for (size_t h = 0; h < H; ++h) {
      if (pos[h] + 1 >= int(fronts[h].size())) continue;
      if (used - opt(h, pos[h]).density + opt(h, pos[h] + 1).density > total + 1e-12) continue;
      if (pick == H || opt(h, pos[h]).recall < opt(pick, pos[pick]).recall) pick = h;
    }
    if (pick == H) break;
    used += opt(pick, pos[pick] + 1).density - opt(pick, pos[pick]).density;
    ++pos[pick];
  }
  result.choice.resize(H);
  result.lowest_recall = H == 0 ? 0.0 : 1e300;
  for (size_t h = 0; h < H; ++h) {
    result.choice[h] = fronts[h][size_t(pos[h])];
    result.lowest_recall = std::min(result.lowest_recall, opt(h, pos[h]).recall);
  }
  result.mean_density = H == 0 ? 0.0 : used / double(H);
  return result;
}

}  // namespace sparseplan
