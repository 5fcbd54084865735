#include "analyzer/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/block_mask_image.h"
#include "io/evaluation_file.h"
#include "io/svg_plot.h"
#include "base/atomic_file.h"
#include "base/parallel_for.h"

namespace sparseplan {
namespace {

std::string layer_name(const Analysis& a, int l) { return std::to_string(a.layers[size_t(l)]); }

// Layer x head map of the density needed for 90% recall (worst sample).
void draw_density_map(const std::string& path, const Analysis& a) {
  svg::Heatmap map;
  map.title = "Density needed for 90% recall (worst sample)";
  map.x_label = "head";
  map.y_label = "layer";
  map.rows = int(a.heads.size());
  map.cols = map.rows ? int(a.heads[0].size()) : 0;
  for (int l = 0; l < map.rows; ++l) {
    map.row_names.push_back(layer_name(a, l));
    for (int h = 0; h < map.cols; ++h) map.values.push_back(required_density(a.heads[size_t(l)][size_t(h)], 0.9));
  }
  map.colorbar_label = "density (kept key blocks / all)";
  map.vmin = 0.0;
  map.vmax = 1.0;
  map.annotate = true;
  svg::write_svg(path, svg::heatmap_svg(map));
}

// Oracle recall against density, one line per head of a layer.
void draw_recall_curves(const std::string& path, const Analysis& a, int l) {
  svg::LinePlot plot;
  plot.title = "Oracle recall, layer " + layer_name(a, l) + " (mean over samples)";
  plot.x = {"density (kept key blocks / all)", false, 0.0, 1.0};
  plot.y = {"recall (attention mass kept)", false, 0.5, 1.0};
  const auto& heads = a.heads[size_t(l)];
  for (size_t h = 0; h < heads.size(); ++h)
    plot.series.push_back({"head " + std::to_string(h) + " (" + head_pattern_name(heads[h].pattern.pattern) + ")",
                           heads[h].mean_density, heads[h].levels, true, false});
  svg::write_svg(path, svg::line_plot_svg(plot));
}

// Mean block mass over samples in tile order relative to the uniform share, max-pooled to at
// most 512 cells a side (so a narrow band stays visible).
void draw_heatmap(const std::string& path, const HeadMass& mass, const TileGeometry& g,
                  const std::string& title) {
  const int n = mass.blocks;
  const int pool = (n + 511) / 512;
  const int cells = (n + pool - 1) / pool;
  std::vector<double> mean(size_t(n) * size_t(n), 0.0);
  for (int s = 0; s < mass.samples; ++s) {
    const float* m = mass.sample(s);
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += double(m[i]) / mass.samples;
  }
  svg::Heatmap map;
  map.title = title;
  map.x_label = "key block (tile order)";
  map.y_label = "query block (tile order)";
  map.rows = map.cols = cells;
  map.row_stride = map.col_stride = pool;
  map.values.assign(size_t(cells) * size_t(cells), 0.0);
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < n; ++k) {
      double& v = map.values[size_t(q / pool) * size_t(cells) + size_t(k / pool)];
      v = std::max(v, mean[size_t(q) * size_t(n) + size_t(k)] * n);
    }
  map.colorbar_label = "block mass / uniform share";
  map.log_colors = true;
  map.vmin = 0.01;
  map.vmax = 100.0;
  map.nonpositive_name = "no mass";
  map.max_side = 360;  // two figures side by side in the report
  for (int b : tile_frame_boundaries(g))
    if (b / pool > 0 && b / pool < cells && (map.row_separators.empty() || map.row_separators.back() != b / pool))
      map.row_separators.push_back(b / pool);
  map.col_separators = map.row_separators;
  map.separator_name = "new tile frame or text";
  svg::write_svg(path, svg::heatmap_svg(map));
}

// PSNR against dense by overall density, one point per evaluated plan, and their frontier.
void draw_frontier(const std::string& path, const std::vector<PlanFidelity>& rows) {
  svg::ScatterPlot plot;
  plot.title = "Fidelity against attention cost";
  plot.x = {"overall attention density (warm-up and selection counted)"};
  plot.y = {"PSNR vs dense video, mean over prompts (dB)"};
  plot.points_name = "evaluated plans";
  plot.frontier_name = "frontier (no plan cheaper and better)";
  bool within_one = true;
  for (const PlanFidelity& r : rows) {
    plot.points.push_back({r.density, r.psnr_mean, r.plan});
    within_one = within_one && r.density <= 1.0;
  }
  if (within_one) plot.x.max = 1.0;
  svg::write_svg(path, svg::scatter_plot_svg(plot));
}

std::string fmt(double v, int digits = 3) {
  if (v < 0.0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string escape(const std::string& s) { return svg::xml_escape(s); }

// Table cells of an evaluation: "-" for a field the file does not give, the infinite PSNR of
// an identical video spelled out.
std::string cell(double v, int digits) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "&#8734; (identical)" : "-&#8734;";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

}  // namespace

Analysis analyze_captures(const MassSource& source, const AnalyzeOptions& options) {
  const SourceInfo& info = source.info();
  Analysis a;
  a.tile = options.tile == std::array<int, 3>{0, 0, 0} ? info.tiles.front() : options.tile;
  if (!info.has_tile(a.tile))
    throw std::invalid_argument("--tile " + tile_text(a.tile) + " was not captured");
  const TileGeometry g = info.geometry(a.tile);
  const int L = int(info.layers.size()), H = info.model.heads;
  a.layers = info.layers;
  a.heads.assign(size_t(L), std::vector<HeadStatsSummary>(size_t(H)));
  parallel_for(L * H, options.threads, [&](int job) {
    const HeadMass m = source.head_mass(a.tile, info.layers[size_t(job / H)], job % H);
    a.heads[size_t(job / H)][size_t(job % H)] = head_stats(g, m, info.sample_prompt, info.sample_step);
    if (options.progress) options.progress();
  });
  return a;
}

void write_analysis_report(const std::string& dir, const MassSource& source, const Analysis& a,
                           const AnalyzeOptions& options) {
  namespace fs = std::filesystem;
  const SourceInfo& info = source.info();
  fs::create_directories(fs::path(dir) / "figures");
  const int L = int(a.heads.size()), H = L ? int(a.heads[0].size()) : 0;

  const auto figure = [&](const std::string& name) { return (fs::path(dir) / "figures" / name).string(); };
  draw_density_map(figure("density_map.svg"), a);
  for (int l = 0; l < L; ++l) draw_recall_curves(figure("recall_layer" + layer_name(a, l) + ".svg"), a, l);
  if (!options.evaluation.empty()) draw_frontier(figure("frontier.svg"), options.evaluation);

  // Representative heads: the first of every label, then the heads needing most density.
  std::vector<std::pair<int, int>> picks;
  std::map<HeadPattern, bool> seen;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      if (!seen[a.heads[size_t(l)][size_t(h)].pattern.pattern]) {
        seen[a.heads[size_t(l)][size_t(h)].pattern.pattern] = true;
        picks.push_back({l, h});
      }
  std::vector<std::pair<double, std::pair<int, int>>> by_density;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      by_density.push_back({-required_density(a.heads[size_t(l)][size_t(h)], 0.9), {l, h}});
  std::sort(by_density.begin(), by_density.end());
  for (const auto& [d, lh] : by_density) {
    if (int(picks.size()) >= options.heatmaps) break;
    if (std::find(picks.begin(), picks.end(), lh) == picks.end()) picks.push_back(lh);
  }
  if (int(picks.size()) > options.heatmaps) picks.resize(size_t(std::max(0, options.heatmaps)));
  for (const auto& [l, h] : picks)
    draw_heatmap(figure("mass_l" + layer_name(a, l) + "_h" + std::to_string(h) + ".svg"),
                 source.head_mass(a.tile, a.layers[size_t(l)], h), info.geometry(a.tile),
                 "Block mass, layer " + layer_name(a, l) + " head " + std::to_string(h) + " (" +
                     head_pattern_name(a.heads[size_t(l)][size_t(h)].pattern.pattern) + ")");

  nlohmann::json j;
  j["model"] = {{"id", info.model.id}, {"layers", info.model.layers}, {"heads", info.model.heads}};
  j["grid"] = {info.grid.frames, info.grid.height, info.grid.width};
  j["tile"] = a.tile;
  j["samples"] = info.samples;
  j["captures"] = info.captures;
  j["levels"] = a.heads.empty() ? std::vector<double>{} : a.heads[0][0].levels;
  nlohmann::json heads = nlohmann::json::array();
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const HeadStatsSummary& s = a.heads[size_t(l)][size_t(h)];
      const HeadPatternNumbers& x = s.pattern.numbers;
      heads.push_back({{"layer", a.layers[size_t(l)]}, {"head", h},
                       {"pattern", head_pattern_name(s.pattern.pattern)},
                       {"reason", s.pattern.reason},
                       {"numbers", {{"same_frame", x.same_frame}, {"local_window", x.local_window},
                                    {"local_in_frame", x.local_in_frame}, {"frame_spread", x.frame_spread},
                                    {"same_position", x.same_position},
                                    {"stripe_far", x.stripe_far}, {"first_frame", x.first_frame},
                                    {"top_blocks", x.top_blocks}, {"text", x.text},
                                    {"density_90", x.density_90}}},
                       {"mean_density", s.mean_density}, {"worst_density", s.worst_density},
                       {"step_overlap", s.step_overlap}, {"prompt_overlap", s.prompt_overlap}});
    }
  j["heads"] = heads;
  write_text_atomically((fs::path(dir) / "analysis.json").string(), j.dump(1) + "\n");

  std::map<std::string, int> counts;
  double step = 0.0, prompt = 0.0;
  int nstep = 0, nprompt = 0;
  for (const auto& layer : a.heads)
    for (const HeadStatsSummary& s : layer) {
      ++counts[head_pattern_name(s.pattern.pattern)];
      if (s.step_overlap >= 0) step += s.step_overlap, ++nstep;
      if (s.prompt_overlap >= 0) prompt += s.prompt_overlap, ++nprompt;
    }
  std::ostringstream html;
  html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sparseplan analysis: "
       << escape(info.model.id) << "</title>\n<style>body{font-family:sans-serif;max-width:1100px;"
       << "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
       << "font-size:13px}figure{display:inline-block;margin:4px}</style></head><body>\n";
  html << "<h1>Attention analysis: " << escape(info.model.id) << "</h1>\n<table>"
       << "<tr><th>model</th><td>" << escape(info.model.id) << " (" << info.model.layers << " layers x "
       << info.model.heads << " heads)</td></tr><tr><th>grid</th><td>" << info.grid.frames << "x"
       << info.grid.height << "x" << info.grid.width << "</td></tr><tr><th>tile</th><td>"
       << tile_text(a.tile) << "</td></tr><tr><th>samples</th><td>" << info.samples
       << " (prompt x step)</td></tr><tr><th>captures</th><td>";
  for (const auto& c : info.captures) html << escape(c) << "<br>";
  html << "</td></tr></table>\n<h2>Patterns</h2><ul>";
  for (const auto& [name, n] : counts) html << "<li>" << escape(name) << ": " << n << " heads</li>";
  html << "</ul><p>Overlap of the blocks needed for 90% recall (Jaccard, mean over heads): between "
       << "consecutive steps " << fmt(nstep ? step / nstep : -1.0) << ", between prompts "
       << fmt(nprompt ? prompt / nprompt : -1.0) << ".</p>\n";
  if (!options.evaluation.empty()) {
    html << "<h2>Fidelity against attention cost</h2><p>From " << escape(options.evaluation_path)
         << ": each plan's video against the dense video from the same noise.</p>"
         << "<img src=\"figures/frontier.svg\" alt=\"PSNR against overall density\">\n<table><tr>"
         << "<th>plan</th><th>overall density</th><th>PSNR mean (dB)</th><th>PSNR worst (dB)</th>"
         << "<th>SSIM</th><th>relative L2</th><th>predicted attention (ms)</th>"
         << "<th>measured attention (ms)</th></tr>\n";
    for (const PlanFidelity& r : options.evaluation)
      html << "<tr><td>" << escape(r.plan) << "</td><td>" << cell(r.density, 3) << "</td><td>"
           << cell(r.psnr_mean, 2) << "</td><td>" << cell(r.psnr_worst, 2) << "</td><td>"
           << cell(r.ssim, 4) << "</td><td>" << cell(r.rel_l2, 4) << "</td><td>"
           << cell(r.predicted_ms, 2) << "</td><td>" << cell(r.measured_ms, 2) << "</td></tr>\n";
    html << "</table>\n";
  }
  html << "<h2>Density needed for 90% recall</h2>"
       << "<img src=\"figures/density_map.svg\" alt=\"layer x head density map\">\n";
  html << "<h2>Oracle recall curves</h2><p>The per-query-block oracle keeps, in every query "
       << "block, the key blocks of most mass until the recall is reached.</p>\n";
  for (int l = 0; l < L; ++l)
    html << "<figure><img src=\"figures/recall_layer" << layer_name(a, l) << ".svg\" alt=\"recall curves, layer "
         << layer_name(a, l) << "\"></figure>\n";
  html << "<h2>Block mass in tile order</h2><p>Mean over samples; heads: the first of every "
       << "pattern, then those needing most density.</p>\n";
  for (const auto& [l, h] : picks)
    html << "<figure><img src=\"figures/mass_l" << layer_name(a, l) << "_h" << h
         << ".svg\" alt=\"block mass, layer " << layer_name(a, l) << " head " << h
         << "\"></figure>\n";
  html << "<h2>Heads</h2><table><tr><th>layer</th><th>head</th><th>pattern</th><th>why</th>"
       << "<th>density @90% (mean / worst)</th><th>density @95%</th><th>step overlap</th>"
       << "<th>prompt overlap</th></tr>\n";
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const HeadStatsSummary& s = a.heads[size_t(l)][size_t(h)];
      const auto at = [&](double level, const std::vector<double>& d) {
        for (size_t i = 0; i < s.levels.size(); ++i)
          if (std::abs(s.levels[i] - level) < 1e-9) return d[i];
        return -1.0;
      };
      html << "<tr><td>" << a.layers[size_t(l)] << "</td><td>" << h << "</td><td>"
           << escape(head_pattern_name(s.pattern.pattern)) << "</td><td>" << escape(s.pattern.reason)
           << "</td><td>" << fmt(at(0.9, s.mean_density)) << " / " << fmt(at(0.9, s.worst_density))
           << "</td><td>" << fmt(at(0.95, s.worst_density)) << "</td><td>" << fmt(s.step_overlap)
           << "</td><td>" << fmt(s.prompt_overlap) << "</td></tr>\n";
    }
  html << "</table></body></html>\n";
  write_text_atomically((fs::path(dir) / "index.html").string(), html.str());
}

}  // namespace sparseplan
