#include "search/recall.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace sparseplan {
namespace {

bool is_text_block(const TileGeometry& g, int b) {
  const int to = g.text_block_offset();
  return g.text_blocks > 0 && b >= to && b < to + g.text_blocks;
}

double row_sum(const float* row, int n) {
  double s = 0.0;
  for (int k = 0; k < n; ++k) s += row[k];
  return s;
}

// Indices of one row's key blocks, largest mass first, enough of them to reach `need`
// (all of them when it is never reached). Grows a partial selection so concentrated rows cost
// little more than one pass.
int fewest_reaching(const float* row, int n, double need, std::vector<int32_t>& order) {
  order.resize(size_t(n));
  std::iota(order.begin(), order.end(), 0);
  const auto larger = [row](int32_t a, int32_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  };
  int k = std::min(n, 8);
  while (true) {
    std::partial_sort(order.begin(), order.begin() + k, order.end(), larger);
    double covered = 0.0;
    for (int i = 0; i < k; ++i) {
      covered += row[order[size_t(i)]];
      if (covered >= need) return i + 1;
    }
    if (k == n) return n;
    k = std::min(n, k * 4);
  }
}

}  // namespace

void check_head_mass(const TileGeometry& g, const HeadMass& mass) {
  if (mass.blocks != g.total_blocks)
    throw std::invalid_argument("block mass has " + std::to_string(mass.blocks) +
                                " blocks per row, the tile geometry has " +
                                std::to_string(g.total_blocks));
  if (mass.samples <= 0) throw std::invalid_argument("block mass has no samples");
  if (mass.values.size() != size_t(mass.samples) * mass.blocks * mass.blocks)
    throw std::invalid_argument("block mass: expected samples x blocks x blocks values");
  for (float v : mass.values)
    if (!(v >= 0.0f) || !std::isfinite(v))
      throw std::invalid_argument("block mass: negative or non-finite value");
}

std::vector<double> video_query_tokens(const TileGeometry& g) {
  const TokenOrder order = make_token_order(g);
  std::vector<double> tokens(size_t(g.total_blocks), 0.0);
  for (int b = 0; b < g.total_blocks; ++b)
    if (!is_text_block(g, b)) tokens[size_t(b)] = order.block_valid[size_t(b)];
  return tokens;
}

std::vector<double> recall_row_weights(const std::vector<double>& query_tokens, const float* mass,
                                       int blocks) {
  std::vector<double> w(size_t(blocks), 0.0);
  double total = 0.0;
  for (int q = 0; q < blocks; ++q) {
    if (query_tokens[size_t(q)] <= 0.0) continue;
    const double s = row_sum(mass + size_t(q) * blocks, blocks);
    if (s <= 0.0) continue;
    w[size_t(q)] = query_tokens[size_t(q)] / s;
    total += query_tokens[size_t(q)];
  }
  if (total > 0.0)
    for (double& x : w) x /= total;
  return w;
}

double layout_recall(const BlockLayout& layout, const float* mass,
                     const std::vector<double>& row_weights) {
  const int n = layout.num_k_blocks;
  double recall = 0.0;
  for (int q = 0; q < layout.num_q_blocks; ++q) {
    const double w = row_weights[size_t(q)];
    if (w == 0.0) continue;
    const float* row = mass + size_t(q) * n;
    double covered = 0.0;
    for (int32_t i = layout.row_offsets[size_t(q)]; i < layout.row_offsets[size_t(q) + 1]; ++i)
      covered += row[layout.col_indices[size_t(i)]];
    recall += w * covered;
  }
  return recall;
}

double layout_density(const TileGeometry& g, const BlockLayout& layout) {
  int64_t nnz = 0;
  for (int q = 0; q < layout.num_q_blocks; ++q)
    if (!is_text_block(g, q))
      nnz += layout.row_offsets[size_t(q) + 1] - layout.row_offsets[size_t(q)];
  return double(nnz) / (double(g.video_blocks) * g.total_blocks);
}

double mask_recall(const std::vector<uint8_t>& mask, const float* mass,
                   const std::vector<double>& row_weights, int blocks) {
  double recall = 0.0;
  for (int q = 0; q < blocks; ++q) {
    const double w = row_weights[size_t(q)];
    if (w == 0.0) continue;
    const float* row = mass + size_t(q) * blocks;
    const uint8_t* m = mask.data() + size_t(q) * blocks;
    double covered = 0.0;
    for (int k = 0; k < blocks; ++k)
      if (m[k]) covered += row[k];
    recall += w * covered;
  }
  return recall;
}

std::vector<uint8_t> oracle_row_mask(const TileGeometry& g, const float* mass, double recall,
                                     double* density) {
  const int n = g.total_blocks;
  std::vector<uint8_t> mask(size_t(n) * n, 0);
  std::vector<int32_t> order;
  int64_t selected = 0;
  for (int q = 0; q < n; ++q) {
    if (is_text_block(g, q)) continue;
    const float* row = mass + size_t(q) * n;
    const double s = row_sum(row, n);
    if (s <= 0.0) continue;
    const int k = fewest_reaching(row, n, recall * s * (1.0 - 1e-12), order);
    for (int i = 0; i < k; ++i) mask[size_t(q) * n + size_t(order[size_t(i)])] = 1;
    selected += k;
  }
  if (density) *density = double(selected) / (double(g.video_blocks) * n);
  return mask;
}

RecallCurve oracle_recall_curve(const TileGeometry& g, const float* mass,
                                const std::vector<double>& levels) {
  const int n = g.total_blocks;
  RecallCurve curve;
  curve.levels = levels;
  std::vector<int64_t> selected(levels.size(), 0);
  std::vector<float> sorted(static_cast<size_t>(n));
  for (int q = 0; q < n; ++q) {
    if (is_text_block(g, q)) continue;
    const float* row = mass + size_t(q) * n;
    const double s = row_sum(row, n);
    if (s <= 0.0) continue;
    std::copy(row, row + n, sorted.begin());
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    for (size_t l = 0; l < levels.size(); ++l) {
      const double need = levels[l] * s * (1.0 - 1e-12);
      double covered = 0.0;
      int k = 0;
      while (k < n && covered < need) covered += sorted[size_t(k++)];
      selected[l] += k;
    }
  }
  for (int64_t c : selected) curve.density.push_back(double(c) / (double(g.video_blocks) * n));
  return curve;
}

double oracle_topk_recall(const TileGeometry& g, const float* mass,
                          const std::vector<double>& row_weights, double density) {
  const int n = g.total_blocks;
  const int k = std::max(1, std::min(n, int(std::lround(density * n))));
  std::vector<float> row_copy(static_cast<size_t>(n));
  double recall = 0.0;
  for (int q = 0; q < n; ++q) {
    const double w = row_weights[size_t(q)];
    if (w == 0.0) continue;
    const float* row = mass + size_t(q) * n;
    std::copy(row, row + n, row_copy.begin());
    std::nth_element(row_copy.begin(), row_copy.begin() + (k - 1), row_copy.end(),
                     std::greater<float>());
    double covered = 0.0;
    for (int i = 0; i < k; ++i) covered += row_copy[size_t(i)];
    recall += w * covered;
  }
  return recall;
}

double mask_jaccard(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("mask_jaccard: masks of different sizes");
  int64_t both = 0, either = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    both += (a[i] & b[i]);
    either += (a[i] | b[i]);
  }
  return either == 0 ? 1.0 : double(both) / double(either);
}

const std::vector<double>& default_recall_levels() {
  static const std::vector<double> levels = {0.5, 0.6, 0.7, 0.8, 0.85, 0.9,
                                             0.925, 0.95, 0.97, 0.98, 0.99};
  return levels;
}

}  // namespace sparseplan
