// `sparseplan analyze`: per-head statistics of captures and a report people open: index.html
// with SVG figures (layer x head map of the density needed for 90% recall, oracle recall
// curves per layer, block-mass heatmaps in tile order for representative heads, and the
// PSNR/density frontier of evaluated plans when given) and analysis.json with every number
// behind them.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "analyzer/head_stats.h"
#include "analyzer/mass_source.h"
#include "io/evaluation_file.h"

namespace sparseplan {

struct AnalyzeOptions {
  std::array<int, 3> tile{0, 0, 0};  // {0,0,0}: the first tile shape of the captures
  int threads = 2;
  int heatmaps = 8;                  // representative heads drawn as block-mass heatmaps
  std::function<void()> progress;    // after every head
  std::vector<PlanFidelity> evaluation;  // `sparseplan evaluate` results: a frontier figure and table
  std::string evaluation_path;           // where they came from, named in the report
};

struct Analysis {
  std::array<int, 3> tile{0, 0, 0};
  std::vector<int> layers;                           // captured model layers
  std::vector<std::vector<HeadStatsSummary>> heads;  // [captured layer index][head]
};

// Throws std::invalid_argument for a tile the captures do not hold.
Analysis analyze_captures(const MassSource& source, const AnalyzeOptions& options);

// Writes DIR/index.html, DIR/analysis.json and DIR/figures/*.svg (creating DIR).
void write_analysis_report(const std::string& dir, const MassSource& source,
                           const Analysis& analysis, const AnalyzeOptions& options);

}  // namespace sparseplan
