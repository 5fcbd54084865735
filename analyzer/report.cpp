#include "analyzer/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/png_writer.h"
#include "base/atomic_file.h"
#include "base/parallel_for.h"

namespace sparseplan {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

// Viridis, sampled at 5 points and interpolated: dark = low, yellow = high.
Rgb colormap(double t) {
  static const double anchors[5][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, int(t));
  const double f = t - i;
  const auto mix = [&](int c) { return uint8_t(anchors[i][c] + f * (anchors[i + 1][c] - anchors[i][c])); };
  return {mix(0), mix(1), mix(2)};
}

Rgb palette(int i) {
  static const Rgb colors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                               {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                               {188, 189, 34}, {23, 190, 207}, {0, 0, 128}, {128, 0, 0}};
  return colors[size_t(i) % 12];
}

struct Canvas {
  int width, height;
  std::vector<uint8_t> rgb;
  Canvas(int w, int h) : width(w), height(h), rgb(size_t(w) * h * 3, 255) {}
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    uint8_t* p = rgb.data() + (size_t(y) * width + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) set(x, y, c);
  }
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      for (int a = 0; a < thick; ++a)
        for (int b = 0; b < thick; ++b) set(x0 + a, y0 + b, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  void save(const std::string& path) const { write_png_rgb(path, width, height, rgb); }
};

// Layer x head map of the density needed for 90% recall (worst sample); 0 dark, 1 bright.
void draw_density_map(const std::string& path, const Analysis& a) {
  const int L = int(a.heads.size()), H = L ? int(a.heads[0].size()) : 0;
  const int cell = std::max(8, std::min(32, 640 / std::max(H, 1)));
  Canvas c(H * cell, L * cell);
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      c.fill(h * cell, l * cell, (h + 1) * cell - 1, (l + 1) * cell - 1,
             colormap(required_density(a.heads[size_t(l)][size_t(h)], 0.9)));
  c.save(path);
}

// Oracle recall (y, 0.5..1) against density (x, 0..1), one line per head of a layer.
void draw_recall_curves(const std::string& path, const std::vector<HeadStatsSummary>& heads) {
  const int W = 420, Hgt = 300, m = 24;
  Canvas c(W, Hgt);
  const Rgb grid{225, 225, 225}, axis{0, 0, 0};
  const auto X = [&](double d) { return m + int(std::lround(d * (W - 2 * m))); };
  const auto Y = [&](double r) { return Hgt - m - int(std::lround((r - 0.5) / 0.5 * (Hgt - 2 * m))); };
  for (double v = 0.0; v <= 1.0001; v += 0.25) c.line(X(v), Y(0.5), X(v), Y(1.0), grid);
  for (double r = 0.5; r <= 1.0001; r += 0.1) c.line(X(0), Y(r), X(1), Y(r), grid);
  c.line(X(0), Y(0.5), X(1), Y(0.5), axis);
  c.line(X(0), Y(0.5), X(0), Y(1.0), axis);
  for (size_t h = 0; h < heads.size(); ++h) {
    const HeadStatsSummary& s = heads[h];
    int px = X(0.0), py = Y(s.levels.front());
    for (size_t i = 0; i < s.levels.size(); ++i) {
      const int x = X(s.mean_density[i]), y = Y(s.levels[i]);
      c.line(px, py, x, y, palette(int(h)), 2);
      px = x;
      py = y;
    }
  }
  c.save(path);
}

// Mean block mass over samples in tile order, log scale, max-pooled to at most 512 pixels.
void draw_heatmap(const std::string& path, const HeadMass& mass) {
  const int n = mass.blocks;
  const int scale = std::max(1, 512 / n);
  const int pool = (n + 511) / 512;
  const int side = ((n + pool - 1) / pool) * scale;
  std::vector<double> cell(size_t((n + pool - 1) / pool) * ((n + pool - 1) / pool), 0.0);
  const int cells = (n + pool - 1) / pool;
  for (int s = 0; s < mass.samples; ++s)
    for (int q = 0; q < n; ++q)
      for (int k = 0; k < n; ++k) {
        double& v = cell[size_t(q / pool) * cells + size_t(k / pool)];
        v = std::max(v, double(mass.sample(s)[size_t(q) * n + size_t(k)]) / mass.samples);
      }
  Canvas c(side, side);
  for (int i = 0; i < cells; ++i)
    for (int j = 0; j < cells; ++j) {
      const double v = cell[size_t(i) * cells + size_t(j)];
      // log10(mass * n): 0 is the uniform share; -2 .. +2 spans the colours.
      const double t = v <= 0.0 ? 0.0 : (std::log10(v * n) + 2.0) / 4.0;
      c.fill(j * scale, i * scale, (j + 1) * scale, (i + 1) * scale, v <= 0.0 ? Rgb{0, 0, 0} : colormap(t));
    }
  c.save(path);
}

std::string fmt(double v, int digits = 3) {
  if (v < 0.0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else if (ch == '&') o += "&amp;";
    else if (ch == '"') o += "&quot;";
    else o += ch;
  }
  return o;
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

  draw_density_map((fs::path(dir) / "figures" / "density_map.png").string(), a);
  for (int l = 0; l < L; ++l)
    draw_recall_curves((fs::path(dir) / "figures" / ("recall_layer" + std::to_string(a.layers[size_t(l)]) + ".png")).string(),
                       a.heads[size_t(l)]);

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
    draw_heatmap((fs::path(dir) / "figures" /
                  ("mass_l" + std::to_string(a.layers[size_t(l)]) + "_h" + std::to_string(h) + ".png")).string(),
                 source.head_mass(a.tile, a.layers[size_t(l)], h));

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
       << "font-size:13px}img{image-rendering:pixelated;border:1px solid #888}figure{display:inline-block;"
       << "margin:4px}</style></head><body>\n";
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
  html << "<h2>Density needed for 90% recall</h2><p>Captured layer (rows) x head (columns), worst sample; "
       << "dark purple = 0, yellow = 1.</p><img src=\"figures/density_map.png\">\n";
  html << "<h2>Oracle recall curves</h2><p>Per layer, one line per head: recall (y, 0.5 to 1) against "
       << "density (x, 0 to 1) of the per-query-block oracle, mean over samples. Grid lines every "
       << "0.25 density and 0.1 recall; head colours cycle blue, orange, green, red, purple, brown, "
       << "pink, grey, olive, cyan, navy, maroon.</p>\n";
  for (int l = 0; l < L; ++l)
    html << "<figure><img src=\"figures/recall_layer" << a.layers[size_t(l)]
         << ".png\"><figcaption>layer " << a.layers[size_t(l)] << "</figcaption></figure>\n";
  html << "<h2>Block mass in tile order</h2><p>Mean over samples, query blocks down, key blocks "
       << "across, log colour scale centred on the uniform share (black: no mass).</p>\n";
  for (const auto& [l, h] : picks)
    html << "<figure><img src=\"figures/mass_l" << a.layers[size_t(l)] << "_h" << h
         << ".png\" width=\"256\"><figcaption>layer " << a.layers[size_t(l)] << " head " << h << ": " << escape(head_pattern_name(a.heads[size_t(l)][size_t(h)].pattern.pattern))
         << "</figcaption></figure>\n";
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
