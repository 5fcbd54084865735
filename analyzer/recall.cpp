#include "analyzer/recall.h"

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

// The fewest of a row's key blocks, largest mass first, reaching `need` (all of them when it is
// never reached): their count and the smallest mass among them. Sorting values (not indices)
// keeps this cheap; a short partial sort serves the concentrated rows most heads have.
int fewest_reaching(const float* row, int n, double need, std::vector<float>& sorted, float* last) {
  sorted.assign(row, row + n);
  const int first = std::min(n, 32);
  std::partial_sort(sorted.begin(), sorted.begin() + first, sorted.end(), std::greater<float>());
  double covered = 0.0;
  for (int i = 0; i < n; ++i) {
    if (i == first) std::sort(sorted.begin() + first, sorted.end(), std::greater<float>());
    covered += sorted[size_t(i)];
    if (covered >= need) {
      *last = sorted[size_t(i)];
      return i + 1;
    }
  }
  *last = n > 0 ? sorted[size_t(n) - 1] : 0.0f;
  return n;
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
  std::vector<float> sorted;
  int64_t selected = 0;
  for (int q = 0; q < n; ++q) {
    if (is_text_block(g, q)) continue;
    const float* row = mass + size_t(q) * n;
    const double s = row_sum(row, n);
    if (s <= 0.0) continue;
    float last = 0.0f;
    const int k = fewest_reaching(row, n, recall * s * (1.0 - 1e-12), sorted, &last);
    // Everything above the k-th value, then as many ties as still needed, lowest index first.
    int above = 0;
    for (int j = 0; j < n; ++j) above += row[j] > last ? 1 : 0;
    int ties = k - above;
    uint8_t* m = mask.data() + size_t(q) * n;
    for (int j = 0; j < n; ++j)
      if (row[j] > last || (row[j] == last && ties-- > 0)) m[j] = 1;
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
