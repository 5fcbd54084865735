#include "kernels/block_select_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace sparseplan::ref {

void check_selection_rule(const SelectionRule& rule) {
  if (rule.top_k <= 0 && !(rule.mass_target >= 0.0f && rule.mass_target <= 1.0f))
    throw std::invalid_argument("mass_target must be in [0, 1], got " +
                                std::to_string(rule.mass_target));
  if (rule.min_blocks < 0)
    throw std::invalid_argument("min_blocks must be >= 0, got " + std::to_string(rule.min_blocks));
  if (rule.max_blocks > 0 && rule.max_blocks < rule.min_blocks)
    throw std::invalid_argument("max_blocks (" + std::to_string(rule.max_blocks) +
                                ") must be >= min_blocks (" + std::to_string(rule.min_blocks) +
                                ") or <= 0");
}

void select_blocks(const SelectionRule& rule, const float* mass, int64_t rows, int nkb,
                   const uint8_t* forced, std::vector<int32_t>& row_offsets,
                   std::vector<int32_t>& col_indices) {
  check_selection_rule(rule);
  row_offsets.assign(size_t(rows) + 1, 0);
  col_indices.clear();
  std::vector<int> order(static_cast<size_t>(nkb));
  std::vector<float> m(static_cast<size_t>(nkb));
  int num_forced = 0;
  for (int j = 0; j < nkb; ++j) num_forced += (forced != nullptr && forced[j]) ? 1 : 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < nkb; ++j) {
      const float x = mass[r * nkb + j];
      m[size_t(j)] = (x > 0.0f) ? x : 0.0f;  // NaN and negatives count as 0
    }
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      const bool fa = forced != nullptr && forced[a], fb = forced != nullptr && forced[b];
      if (fa != fb) return fa;
      if (m[size_t(a)] != m[size_t(b)]) return m[size_t(a)] > m[size_t(b)];
      return a < b;
    });
    int count = nkb;
    if (rule.top_k > 0) {
      count = rule.top_k;
    } else {
      double total = 0.0;
      for (float x : m) total += x;
      const double target = double(rule.mass_target) * total;
      double cum = 0.0;
      for (int i = 0; i < nkb; ++i) {
        cum += m[size_t(order[size_t(i)])];
        if (cum >= target) {
          count = i + 1;
          break;
        }
      }
    }
    count = std::max({count, rule.min_blocks, num_forced});
    if (rule.max_blocks > 0) count = std::min(count, std::max(rule.max_blocks, num_forced));
    count = std::min(count, nkb);
    std::vector<int32_t> cols(order.begin(), order.begin() + count);
    std::sort(cols.begin(), cols.end());
    col_indices.insert(col_indices.end(), cols.begin(), cols.end());
    row_offsets[size_t(r) + 1] = int32_t(col_indices.size());
  }
}

}  // namespace sparseplan::ref
