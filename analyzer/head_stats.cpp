#include "analyzer/head_stats.h"

#include <algorithm>
#include <stdexcept>

namespace sparseplan {

HeadStatsSummary head_stats(const TileGeometry& g, const HeadMass& mass,
                            const std::vector<int>& sample_prompt,
                            const std::vector<int>& sample_step,
                            const std::vector<double>& levels) {
  check_head_mass(g, mass);
  if (int(sample_prompt.size()) != mass.samples || int(sample_step.size()) != mass.samples)
    throw std::invalid_argument("head_stats: prompt/step lists do not match the samples");
  HeadStatsSummary out;
  out.pattern = classify_head(g, mass);
  out.levels = levels;
  out.mean_density.assign(levels.size(), 0.0);
  out.worst_density.assign(levels.size(), 0.0);
  std::vector<std::vector<uint8_t>> sets(static_cast<size_t>(mass.samples));
  for (int s = 0; s < mass.samples; ++s) {
    const RecallCurve c = oracle_recall_curve(g, mass.sample(s), levels);
    for (size_t l = 0; l < levels.size(); ++l) {
      out.mean_density[l] += c.density[l] / mass.samples;
      out.worst_density[l] = std::max(out.worst_density[l], c.density[l]);
    }
    sets[size_t(s)] = oracle_row_mask(g, mass.sample(s), 0.9);
  }
  double step_sum = 0.0, prompt_sum = 0.0;
  int step_pairs = 0, prompt_pairs = 0;
  for (int a = 0; a < mass.samples; ++a)
    for (int b = a + 1; b < mass.samples; ++b) {
      const bool same_prompt = sample_prompt[size_t(a)] == sample_prompt[size_t(b)];
      if (same_prompt && sample_step[size_t(b)] == sample_step[size_t(a)] + 1) {
        step_sum += mask_jaccard(sets[size_t(a)], sets[size_t(b)]);
        ++step_pairs;
      } else if (!same_prompt && sample_step[size_t(a)] == sample_step[size_t(b)]) {
        prompt_sum += mask_jaccard(sets[size_t(a)], sets[size_t(b)]);
        ++prompt_pairs;
      }
    }
  if (step_pairs > 0) out.step_overlap = step_sum / step_pairs;
  if (prompt_pairs > 0) out.prompt_overlap = prompt_sum / prompt_pairs;
  return out;
}

double required_density(const HeadStatsSummary& stats, double level) {
  const auto& L = stats.levels;
  const auto& D = stats.worst_density;
  if (L.empty()) return 1.0;
  if (level <= L.front()) return D.front();
  for (size_t i = 1; i < L.size(); ++i)
    if (level <= L[i]) return D[i - 1] + (D[i] - D[i - 1]) * (level - L[i - 1]) / (L[i] - L[i - 1]);
  return D.back();
}

}  // namespace sparseplan
