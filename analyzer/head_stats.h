// Per-head statistics of a capture: the oracle recall-vs-density curve, the pattern label, and
// how stable the blocks needed for 90% recall are between denoising steps and between prompts.
#pragma once

#include <vector>

#include "plan/tile_geometry.h"
#include "analyzer/head_pattern.h"
#include "analyzer/recall.h"

namespace sparseplan {

struct HeadStatsSummary {
  HeadPatternResult pattern;
  std::vector<double> levels;
  std::vector<double> mean_density;   // [levels]: oracle density, mean over samples
  std::vector<double> worst_density;  // [levels]: the sample needing most
  // Mean Jaccard overlap of the per-query-block 90% oracle sets: consecutive captured steps of
  // one prompt; different prompts at one step. < 0 when the capture has no such pair.
  double step_overlap = -1.0;
  double prompt_overlap = -1.0;
};

// sample_prompt / sample_step: [samples] prompt number and step index of every sample.
HeadStatsSummary head_stats(const TileGeometry& geometry, const HeadMass& mass,
                            const std::vector<int>& sample_prompt,
                            const std::vector<int>& sample_step,
                            const std::vector<double>& levels = default_recall_levels());

// Density needed at `level` (worst sample), interpolated on the summary's levels.
double required_density(const HeadStatsSummary& stats, double level);

}  // namespace sparseplan
