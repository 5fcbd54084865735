#include "io/svg_plot.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "io/png_writer.h"

namespace sparseplan::svg {
namespace {

constexpr double kCharWidth = 7.0;  // a conservative width of one 12px sans-serif character
constexpr double kLegendRow = 18.0;

struct Rgb {
  int r, g, b;
};

std::string hex(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

// Viridis at 5 anchors, linearly interpolated: the colour bar's gradient uses the same anchors,
// so the bar shows exactly the colours of the cells.
const Rgb kViridis[5] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};

Rgb viridis(double t) {
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, int(t));
  const double f = t - i;
  const auto mix = [&](int a, int b) { return int(std::lround(a + f * (b - a))); };
  return {mix(kViridis[i].r, kViridis[i + 1].r), mix(kViridis[i].g, kViridis[i + 1].g),
          mix(kViridis[i].b, kViridis[i + 1].b)};
}

// Tableau 10 and two more; a second cycle of series is dashed, so 24 series stay distinct.
Rgb series_color(size_t i) {
  static const Rgb colors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                               {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                               {188, 189, 34},  {23, 190, 207}, {0, 0, 128},   {128, 0, 0}};
  return colors[i % 12];
}

// Coordinates: two decimals at most, trailing zeros dropped.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

double text_width(const std::string& s, double char_width = kCharWidth) {
  size_t chars = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++chars;  // count UTF-8 code points, not bytes
  return double(chars) * char_width;
}

void require_finite_limit(double v, const std::string& what) {
  if (std::isinf(v)) throw std::invalid_argument("svg plot: " + what + " limit is infinite");
}

// 1, 2, 2.5 or 5 times a power of ten, the smallest of them >= raw.
double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * mag >= raw * (1.0 - 1e-9)) return m * mag;
  return 10.0 * mag;
}

int decimals_of(double step) {
  for (int d = 0; d < 10; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) return d;
  }
  return 10;
}

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos) s = "0";  // "-0.00" -> "0"
  return s;
}

struct Scale {
  double lo = 0.0, hi = 1.0;
  bool log = false;
  double pixel_lo = 0.0, pixel_hi = 1.0;  // pixels of lo and hi (y runs upwards: lo > hi)
  std::vector<double> ticks;
  std::vector<std::string> labels;

  double fraction(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
  }
  double to_pixel(double v) const { return pixel_lo + fraction(v) * (pixel_hi - pixel_lo); }
  bool usable(double v) const { return std::isfinite(v) && (!log || v > 0.0); }
};

void linear_ticks(Scale& s, int target) {
  const double step = nice_step((s.hi - s.lo) / std::max(1, target));
  const int decimals = decimals_of(step);
  const bool exponent = std::max(std::abs(s.lo), std::abs(s.hi)) >= 1e6 || step < 1e-4;
  const double first = std::ceil(s.lo / step - 1e-9);
  // A range within rounding of its magnitude has no room for ticks; the cap keeps it finite.
  for (int i = 0; i < 100 && (first + i) * step <= s.hi + step * 1e-9; ++i) {
    const double v = (first + i) * step;
    s.ticks.push_back(v);
    s.labels.push_back(exponent ? format_number(v) : fixed(v, decimals));
  }
}

void log_ticks(Scale& s) {
  const int e0 = int(std::ceil(std::log10(s.lo) - 1e-9)), e1 = int(std::floor(std::log10(s.hi) + 1e-9));
  const int decade_step = std::max(1, (e1 - e0 + 1) / 8);
  for (int e = e0; e <= e1; e += decade_step) s.ticks.push_back(std::pow(10.0, e));
  if (s.ticks.size() < 3) {
    s.ticks.clear();
    for (int e = e0 - 1; e <= e1; ++e)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, e);
        if (v >= s.lo * (1 - 1e-9) && v <= s.hi * (1 + 1e-9)) s.ticks.push_back(v);
      }
  }
  if (s.ticks.size() < 2) {  // less than a factor of 2.5 in view: round linear steps
    s.ticks.clear();
    linear_ticks(s, 4);
    return;
  }
  for (double v : s.ticks) s.labels.push_back(format_number(v));
}

// The axis range: explicit limits as given, missing ones from the data widened to round values.
Scale make_scale(const Axis& axis, const std::vector<double>& data, double pad_fraction,
                 int target_ticks, const std::string& name) {
  require_finite_limit(axis.min, name + " axis minimum");
  require_finite_limit(axis.max, name + " axis maximum");
  if (axis.log && ((!std::isnan(axis.min) && axis.min <= 0) || (!std::isnan(axis.max) && axis.max <= 0)))
    throw std::invalid_argument("svg plot: the log " + name + " axis needs limits > 0");
  Scale s;
  s.log = axis.log;
  double lo = INFINITY, hi = -INFINITY;
  for (double v : data)
    if (s.usable(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (lo > hi) lo = s.log ? 1.0 : 0.0, hi = s.log ? 10.0 : 1.0;
  if (!std::isnan(axis.min)) lo = axis.min;
  if (!std::isnan(axis.max)) hi = axis.max;
  if (!std::isnan(axis.min) && !std::isnan(axis.max) && axis.min >= axis.max)
    throw std::invalid_argument("svg plot: the " + name + " axis minimum " + format_number(axis.min) +
                                " is not below its maximum " + format_number(axis.max));
  if (hi - lo <= 1e-9 * std::max(std::abs(lo), std::abs(hi))) {
    // One value (or values equal to rounding), or one limit given on the wrong side of the data.
    if (s.log) {
      if (std::isnan(axis.min)) lo = hi / 10.0;
      else hi = lo * 10.0;
    } else {
      const double half = lo == 0.0 ? 1.0 : std::abs(lo) * 0.5;
      if (std::isnan(axis.min)) lo = hi - half;
      if (std::isnan(axis.max) || lo >= hi) hi = lo + 2 * half;
    }
  }
  if (s.log) {
    const double l0 = std::log10(lo), l1 = std::log10(hi), pad = (l1 - l0) * pad_fraction;
    if (std::isnan(axis.min)) lo = std::pow(10.0, std::floor(l0 - pad + 1e-9));
    if (std::isnan(axis.max)) hi = std::pow(10.0, std::ceil(l1 + pad - 1e-9));
  } else {
    // Widen to multiples of the tick step; widening can raise the step, so repeat until the
    // limits are ticks themselves.
    const double pad = (hi - lo) * pad_fraction;
    lo -= std::isnan(axis.min) ? pad : 0.0;
    hi += std::isnan(axis.max) ? pad : 0.0;
    for (int round = 0; round < 4; ++round) {
      const double step = nice_step((hi - lo) / std::max(1, target_ticks));
      if (std::isnan(axis.min)) lo = std::floor(lo / step + 1e-9) * step;
      if (std::isnan(axis.max)) hi = std::ceil(hi / step - 1e-9) * step;
    }
  }
  s.lo = lo;
  s.hi = hi;
  if (s.log) log_ticks(s);
  else linear_ticks(s, target_ticks);
  return s;
}

class Writer {
 public:
  std::ostringstream out;

  void begin(double width, double height) {
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
        << "width=\"" << num(width) << "\" height=\"" << num(height) << "\" viewBox=\"0 0 "
        << num(width) << ' ' << num(height) << "\" font-family=\"DejaVu Sans, Arial, sans-serif\" "
        << "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  }
  void end() { out << "</svg>\n"; }

  void text(double x, double y, const std::string& s, const std::string& cls,
            const std::string& anchor = "start", const std::string& extra = "") {
    out << "<text class=\"" << cls << "\" x=\"" << num(x) << "\" y=\"" << num(y) << "\"";
    if (anchor != "start") out << " text-anchor=\"" << anchor << "\"";
    if (!extra.empty()) out << ' ' << extra;
    out << '>' << xml_escape(s) << "</text>\n";
  }
  void line(double x0, double y0, double x1, double y1, const std::string& stroke,
            double width = 1.0, const std::string& extra = "") {
    out << "<line x1=\"" << num(x0) << "\" y1=\"" << num(y0) << "\" x2=\"" << num(x1) << "\" y2=\""
        << num(y1) << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width) << "\"";
    if (!extra.empty()) out << ' ' << extra;
    out << "/>\n";
  }
  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& extra = "") {
    out << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\""
        << num(h) << "\" fill=\"" << fill << "\"";
    if (!extra.empty()) out << ' ' << extra;
    out << "/>\n";
  }
  void circle(double x, double y, double r, const std::string& fill, const std::string& stroke,
              const std::string& cls = "") {
    out << "<circle";
    if (!cls.empty()) out << " class=\"" << cls << "\"";
    out << " cx=\"" << num(x) << "\" cy=\"" << num(y) << "\" r=\"" << num(r) << "\" fill=\"" << fill
        << "\" stroke=\"" << stroke << "\" stroke-width=\"1.5\"/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& stroke,
                double width, bool dashed) {
    out << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width)
        << "\" stroke-linejoin=\"round\"";
    if (dashed) out << " stroke-dasharray=\"6 3\"";
    out << " points=\"";
    for (size_t i = 0; i < pts.size(); ++i)
      out << (i ? " " : "") << num(pts[i].first) << ',' << num(pts[i].second);
    out << "\"/>\n";
  }
  void title(double width, const std::string& s) {
    if (!s.empty()) text(width / 2, 20, s, "title", "middle", "font-size=\"14\" font-weight=\"bold\"");
  }
};

// Frame, grid lines, ticks with numbers and the axis labels of an x-y plot whose data area is
// [left, left + w] x [top, top + h].
void draw_axes(Writer& svg, const Scale& xs, const Scale& ys, const Axis& xa, const Axis& ya,
               double left, double top, double w, double h, double y_label_x) {
  svg.out << "<g class=\"grid\">\n";
  for (double v : xs.ticks) svg.line(xs.to_pixel(v), top, xs.to_pixel(v), top + h, "#e4e4e4");
  for (double v : ys.ticks) svg.line(left, ys.to_pixel(v), left + w, ys.to_pixel(v), "#e4e4e4");
  svg.out << "</g>\n";
  svg.rect(left, top, w, h, "none", "stroke=\"#333333\" stroke-width=\"1\"");
  svg.out << "<g class=\"x-axis\">\n";
  for (size_t i = 0; i < xs.ticks.size(); ++i) {
    const double x = xs.to_pixel(xs.ticks[i]);
    svg.line(x, top + h, x, top + h + 4, "#333333");
    svg.text(x, top + h + 17, xs.labels[i], "tick-label", "middle");
  }
  svg.text(left + w / 2, top + h + 36, xa.label + (xa.log ? " (log scale)" : ""), "axis-label", "middle",
           "font-size=\"13\"");
  svg.out << "</g>\n<g class=\"y-axis\">\n";
  for (size_t i = 0; i < ys.ticks.size(); ++i) {
    const double y = ys.to_pixel(ys.ticks[i]);
    svg.line(left - 4, y, left, y, "#333333");
    svg.text(left - 7, y + 4, ys.labels[i], "tick-label", "end");
  }
  const double cy = top + h / 2;
  svg.text(y_label_x, cy, ya.label + (ya.log ? " (log scale)" : ""), "axis-label", "middle",
           "font-size=\"13\" transform=\"rotate(-90 " + num(y_label_x) + ' ' + num(cy) + ")\"");
  svg.out << "</g>\n";
}

double widest(const std::vector<std::string>& labels) {
  double w = 0.0;
  for (const auto& s : labels) w = std::max(w, text_width(s));
  return w;
}

struct LegendEntry {
  std::string name;
  Rgb color;
  bool line = true, dashed = false, dot = false, hollow = false;
};

struct LegendLayout {
  int per_column = 1, columns = 0;
  double column_width = 0.0;
  double width() const { return columns == 0 ? 0.0 : columns * column_width + 12; }
};

LegendLayout layout_legend(const std::vector<LegendEntry>& entries, double height) {
  LegendLayout l;
  if (entries.empty()) return l;
  l.per_column = std::max(1, int((height - 8) / kLegendRow));
  l.columns = int((entries.size() + size_t(l.per_column) - 1) / size_t(l.per_column));
  double w = 0.0;
  for (const auto& e : entries) w = std::max(w, text_width(e.name));
  l.column_width = 32 + w + 12;
  return l;
}

void draw_legend(Writer& svg, const std::vector<LegendEntry>& entries, const LegendLayout& l,
                 double x0, double y0) {
  if (entries.empty()) return;
  const int rows = std::min<int>(l.per_column, int(entries.size()));
  svg.out << "<g class=\"legend\">\n";
  svg.rect(x0, y0, l.columns * l.column_width + 4, rows * kLegendRow + 8, "#ffffff",
           "stroke=\"#bbbbbb\" stroke-width=\"1\"");
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double x = x0 + 8 + double(int(i) / l.per_column) * l.column_width;
    const double y = y0 + 4 + (double(int(i) % l.per_column) + 0.5) * kLegendRow;
    svg.out << "<g class=\"legend-entry\">\n";
    if (e.line)
      svg.out << "<line x1=\"" << num(x) << "\" y1=\"" << num(y) << "\" x2=\"" << num(x + 22) << "\" y2=\""
              << num(y) << "\" stroke=\"" << hex(e.color) << "\" stroke-width=\"2\""
              << (e.dashed ? " stroke-dasharray=\"6 3\"" : "") << "/>\n";
    if (e.dot) svg.circle(x + 11, y, 3.5, e.hollow ? "#ffffff" : hex(e.color), hex(e.color));
    svg.text(x + 28, y + 4, e.name, "legend-label");
    svg.out << "</g>\n";
  }
  svg.out << "</g>\n";
}

void draw_note(Writer& svg, const std::vector<std::string>& lines, double x, double y) {
  for (size_t i = 0; i < lines.size(); ++i)
    svg.text(x, y + 15.0 * double(i), lines[i], "note", "start", "font-size=\"11\" fill=\"#555555\"");
}

std::string join_limited(const std::vector<std::string>& names, size_t limit) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size() - limit) + " more)";
  return s;
}

struct Frame {
  double left, top, w, h, width, height, y_label_x;
};

// Margins around a w x h data area: tick labels and axis labels, a legend on the right, notes
// below, and room for the title. Places both scales on the data area.
Frame make_frame(const std::string& title, Scale& xs, Scale& ys, double w, double h,
                 const LegendLayout& legend, const std::vector<std::string>& notes) {
  const size_t note_lines = notes.size();
  const double note_width = notes.empty() ? 0.0 : text_width(notes[0], 6.2);
  Frame f;
  f.w = w;
  f.h = h;
  f.y_label_x = 16;
  f.left = 16 + 14 + widest(ys.labels) + 10;
  f.top = title.empty() ? 14 : 36;
  const double legend_w = legend.width();
  f.width = f.left + w + (legend_w > 0 ? 16 + legend_w : 24);
  f.width = std::max({f.width, text_width(title, 8.5) + 24, note_width + f.left + 8});
  f.height = f.top + h + 48 + 15.0 * double(note_lines);
  xs.pixel_lo = f.left;
  xs.pixel_hi = f.left + f.w;
  ys.pixel_lo = f.top + f.h;
  ys.pixel_hi = f.top;
  return f;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string o;
  o.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n') o += '?';
        else o += ch;
    }
  }
  return o;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) throw std::invalid_argument("svg plot: cannot label a non-finite number");
  if (v == 0.0) return "0";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

std::vector<size_t> pareto_frontier(const std::vector<ScatterPoint>& points) {
  std::vector<size_t> order;
  for (size_t i = 0; i < points.size(); ++i)
    if (std::isfinite(points[i].x) && std::isfinite(points[i].y)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (points[a].x != points[b].x) return points[a].x < points[b].x;
    return points[a].y > points[b].y;
  });
  std::vector<size_t> frontier;
  for (size_t i : order)
    if (frontier.empty() || points[i].y > points[frontier.back()].y) frontier.push_back(i);
  return frontier;
}

std::string line_plot_svg(const LinePlot& plot) {
  std::vector<double> xs, ys;
  std::vector<std::string> skipped;
  for (const Series& s : plot.series) {
    if (s.x.size() != s.y.size())
      throw std::invalid_argument("svg plot: series '" + s.name + "' has " + std::to_string(s.x.size()) +
                                  " x values and " + std::to_string(s.y.size()) + " y values");
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  Scale sx = make_scale(plot.x, xs, 0.0, std::max(2, plot.plot_width / 80), "x");
  Scale sy = make_scale(plot.y, ys, 0.0, std::max(2, plot.plot_height / 50), "y");
  for (const Series& s : plot.series) {
    size_t bad = 0;
    for (size_t i = 0; i < s.x.size(); ++i) bad += !(sx.usable(s.x[i]) && sy.usable(s.y[i]));
    if (bad) skipped.push_back(s.name + " (" + std::to_string(bad) + ")");
  }
  std::vector<LegendEntry> entries;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const Series& s = plot.series[i];
    entries.push_back({s.name, series_color(i), true, s.dashed || (i / 12) % 2 == 1, s.markers, false});
  }
  const LegendLayout legend = layout_legend(entries, plot.plot_height);
  std::vector<std::string> notes;
  if (!skipped.empty())
    notes.push_back("not drawn (non-finite" + std::string(plot.x.log || plot.y.log ? " or <= 0 on a log axis" : "") +
                    "): " + join_limited(skipped, 6));
  const Frame f = make_frame(plot.title, sx, sy, plot.plot_width, plot.plot_height, legend, notes);

  Writer svg;
  svg.begin(f.width, f.height);
  svg.title(f.width, plot.title);
  svg.out << "<defs><clipPath id=\"plot-area\"><rect x=\"" << num(f.left) << "\" y=\"" << num(f.top)
          << "\" width=\"" << num(f.w) << "\" height=\"" << num(f.h) << "\"/></clipPath></defs>\n";
  draw_axes(svg, sx, sy, plot.x, plot.y, f.left, f.top, f.w, f.h, f.y_label_x);
  svg.out << "<g class=\"series\" clip-path=\"url(#plot-area)\">\n";
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const Series& s = plot.series[i];
    const std::string color = hex(series_color(i));
    std::vector<std::pair<double, double>> run;
    const auto flush = [&] {
      if (run.size() == 1 && !s.markers) svg.circle(run[0].first, run[0].second, 2.0, color, color);
      if (run.size() > 1) svg.polyline(run, color, 1.8, entries[i].dashed);
      run.clear();
    };
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!sx.usable(s.x[k]) || !sy.usable(s.y[k])) {
        flush();
        continue;
      }
      run.push_back({sx.to_pixel(s.x[k]), sy.to_pixel(s.y[k])});
      if (s.markers) svg.circle(run.back().first, run.back().second, 2.5, color, color);
    }
    flush();
  }
  svg.out << "</g>\n";
  draw_legend(svg, entries, legend, f.left + f.w + 16, f.top);
  draw_note(svg, notes, f.left, f.top + f.h + 62);
  svg.end();
  return svg.out.str();
}

std::string heatmap_svg(const Heatmap& map) {
  if (map.rows <= 0 || map.cols <= 0)
    throw std::invalid_argument("svg heatmap '" + map.title + "': needs at least one row and column");
  if (map.values.size() != size_t(map.rows) * size_t(map.cols))
    throw std::invalid_argument("svg heatmap '" + map.title + "': " + std::to_string(map.values.size()) +
                                " values for " + std::to_string(map.rows) + " x " +
                                std::to_string(map.cols) + " cells");
  if ((!map.row_names.empty() && map.row_names.size() != size_t(map.rows)) ||
      (!map.col_names.empty() && map.col_names.size() != size_t(map.cols)))
    throw std::invalid_argument("svg heatmap '" + map.title + "': one name per row and per column");
  if (map.row_stride < 1 || map.col_stride < 1)
    throw std::invalid_argument("svg heatmap '" + map.title + "': strides must be >= 1");
  const bool categorical = !map.categories.empty();
  for (const Category& c : map.categories)
    if (c.color.size() != 7 || c.color[0] != '#' ||
        c.color.find_first_not_of("0123456789abcdefABCDEF", 1) != std::string::npos)
      throw std::invalid_argument("svg heatmap '" + map.title + "': category '" + c.name +
                                  "' needs a colour as #rrggbb, not '" + c.color + "'");
  if (categorical)
    for (double v : map.values)
      if (!(v >= 0 && v < double(map.categories.size()) && v == std::floor(v)))
        throw std::invalid_argument("svg heatmap '" + map.title + "': value " +
                                    (std::isfinite(v) ? format_number(v) : std::string("not finite")) +
                                    " is not a category index below " + std::to_string(map.categories.size()));
  for (int r : map.row_separators)
    if (r <= 0 || r >= map.rows) throw std::invalid_argument("svg heatmap '" + map.title + "': row separator outside the map");
  for (int c : map.col_separators)
    if (c <= 0 || c >= map.cols) throw std::invalid_argument("svg heatmap '" + map.title + "': column separator outside the map");
  const Axis color_axis{map.colorbar_label, map.log_colors, map.vmin, map.vmax};
  Scale cs = make_scale(color_axis, map.values, 0.0, 5, "colour");
  if (std::isnan(map.vmin) || std::isnan(map.vmax)) {
    // The colour range follows the data exactly (not widened), so the extremes are the
    // extreme colours; the bar still shows round ticks inside it.
    double lo = INFINITY, hi = -INFINITY;
    for (double v : map.values)
      if (cs.usable(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (lo < hi) {
      Axis exact = color_axis;
      if (std::isnan(exact.min)) exact.min = lo;
      if (std::isnan(exact.max)) exact.max = hi;
      if (exact.min < exact.max) cs = make_scale(exact, {}, 0.0, 5, "colour");
    }
  }
  bool any_missing = false, any_nonpositive = false;
  for (double v : map.values) {
    if (!std::isfinite(v)) any_missing = true;
    else if (map.log_colors && v <= 0.0) any_nonpositive = true;
  }
  const Rgb missing{217, 217, 217}, nonpositive{0, 0, 0};
  const auto category_rgb = [&](size_t i) {
    const std::string& c = map.categories[i].color;
    return Rgb{std::stoi(c.substr(1, 2), nullptr, 16), std::stoi(c.substr(3, 2), nullptr, 16),
               std::stoi(c.substr(5, 2), nullptr, 16)};
  };
  const auto color_of = [&](double v) {
    if (categorical) return category_rgb(size_t(v));
    if (!std::isfinite(v)) return missing;
    if (map.log_colors && v <= 0.0) return nonpositive;
    return viridis(cs.fraction(std::clamp(v, cs.lo, cs.hi)));
  };

  const double cell = std::min(48.0, double(map.max_side) / double(std::max(map.rows, map.cols)));
  const double w = cell * map.cols, h = cell * map.rows;

  // Tick labels: the given names, or numeric indices at round steps; thinned so they never touch.
  struct Ticks {
    std::vector<double> pos;  // in cells, from the map's edge
    std::vector<std::string> labels;
  };
  const auto make_ticks = [&](const std::vector<std::string>& names, int n, int stride, bool horizontal) {
    Ticks t;
    if (!names.empty()) {
      const double spacing = horizontal ? widest(names) + 8 : 14.0;
      const int every = std::max(1, int(std::ceil(spacing / cell)));
      for (int i = 0; i < n; i += every) t.pos.push_back(i + 0.5), t.labels.push_back(names[size_t(i)]);
      return t;
    }
    const double extent = double(n) * stride;
    const double label_w = text_width(std::to_string(int64_t(extent))) + 10;
    const double pixels = horizontal ? w : h;
    const int target = std::max(1, int(pixels / (horizontal ? std::max(40.0, label_w) : 28.0)));
    double step = std::max(1.0, nice_step(extent / target));
    if (step == 2.5) step = 2.0;  // indices are whole numbers
    for (double v = 0; v < extent; v += step) {
      t.pos.push_back((v + 0.5) / stride);
      t.labels.push_back(format_number(v));
    }
    return t;
  };
  const Ticks xt = make_ticks(map.col_names, map.cols, map.col_stride, true);
  const Ticks yt = make_ticks(map.row_names, map.rows, map.row_stride, false);

  const double bar_h =
      categorical ? 0.0 : std::max({h, 150.0, text_width(map.colorbar_label + (map.log_colors ? " (log scale)" : "")) + 12});
  std::vector<std::pair<std::string, Rgb>> swatches;
  if (categorical)
    for (size_t i = 0; i < map.categories.size(); ++i) swatches.push_back({map.categories[i].name, category_rgb(i)});
  if (any_missing && !categorical) swatches.push_back({"no data", missing});
  if (any_nonpositive && !categorical) swatches.push_back({map.nonpositive_name, nonpositive});
  const bool separators = !map.row_separators.empty() || !map.col_separators.empty();
  const Rgb separator_color{255, 80, 80};

  const double left = 16 + 14 + widest(yt.labels) + 10;
  const double top = map.title.empty() ? 14 : 36;
  const double bar_x = left + w + 18;
  const double bar_label_x = bar_x + 14 + 8 + widest(cs.labels) + 14;
  double width = categorical ? bar_x : bar_label_x + 14;
  for (const auto& s : swatches) width = std::max(width, bar_x + 22 + text_width(s.first) + 8);
  if (separators) width = std::max(width, bar_x + 22 + text_width(map.separator_name) + 8);
  width = std::max(width, text_width(map.title, 8.5) + 24);
  const double x_label_y = top + h + 36;
  const double height =
      std::max(x_label_y + 12, top + bar_h + 22.0 * double(swatches.size() + (separators ? 1 : 0)) + 12);

  Writer svg;
  svg.begin(width, height);
  svg.title(width, map.title);
  // crispEdges: no anti-aliased seams between neighbouring cells.
  svg.out << "<g class=\"cells\" shape-rendering=\"crispEdges\">\n";
  if (size_t(map.rows) * size_t(map.cols) <= 4096) {
    const bool gaps = cell >= 20 && !categorical;  // hairlines keep neighbouring values apart
    for (int r = 0; r < map.rows; ++r)
      for (int c = 0; c < map.cols; ++c) {
        const double v = map.values[size_t(r) * size_t(map.cols) + size_t(c)];
        svg.rect(left + c * cell, top + r * cell, cell, cell, hex(color_of(v)),
                 gaps ? "stroke=\"#ffffff\" stroke-width=\"0.5\"" : "");
        if (map.annotate && cell >= 34 && std::isfinite(v)) {
          const bool dark = (!map.log_colors || v > 0) && cs.fraction(std::clamp(v, cs.lo, cs.hi)) < 0.6;
          svg.text(left + (c + 0.5) * cell, top + (r + 0.5) * cell + 4,
                   std::abs(v) < 100 ? fixed(v, 2) : format_number(v), "cell-value", "middle",
                   std::string("font-size=\"11\" fill=\"") + (dark ? "#ffffff" : "#000000") + "\"");
        }
      }
  } else {
    std::vector<uint8_t> rgb(size_t(map.rows) * size_t(map.cols) * 3);
    for (size_t i = 0; i < map.values.size(); ++i) {
      const Rgb c = color_of(map.values[i]);
      rgb[3 * i] = uint8_t(c.r);
      rgb[3 * i + 1] = uint8_t(c.g);
      rgb[3 * i + 2] = uint8_t(c.b);
    }
    const std::string png = encode_png_rgb(map.cols, map.rows, rgb);
    static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string data;
    for (size_t i = 0; i < png.size(); i += 3) {
      const uint32_t n = (uint32_t(uint8_t(png[i])) << 16) |
                         (i + 1 < png.size() ? uint32_t(uint8_t(png[i + 1])) << 8 : 0u) |
                         (i + 2 < png.size() ? uint32_t(uint8_t(png[i + 2])) : 0u);
      data += b64[(n >> 18) & 63];
      data += b64[(n >> 12) & 63];
      data += i + 1 < png.size() ? b64[(n >> 6) & 63] : '=';
      data += i + 2 < png.size() ? b64[n & 63] : '=';
    }
    svg.out << "<image x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\"" << num(w)
            << "\" height=\"" << num(h) << "\" preserveAspectRatio=\"none\" "
            << "image-rendering=\"pixelated\" style=\"image-rendering:pixelated\" "
            << "xlink:href=\"data:image/png;base64," << data << "\"/>\n";
  }
  svg.out << "</g>\n";
  if (separators) {
    svg.out << "<g class=\"separators\">\n";
    for (int r : map.row_separators) svg.line(left, top + r * cell, left + w, top + r * cell, hex(separator_color), 1.2);
    for (int c : map.col_separators) svg.line(left + c * cell, top, left + c * cell, top + h, hex(separator_color), 1.2);
    svg.out << "</g>\n";
  }
  svg.rect(left, top, w, h, "none", "stroke=\"#333333\" stroke-width=\"1\"");

  svg.out << "<g class=\"x-axis\">\n";
  for (size_t i = 0; i < xt.pos.size(); ++i) {
    const double x = left + xt.pos[i] * cell;
    svg.line(x, top + h, x, top + h + 4, "#333333");
    svg.text(x, top + h + 17, xt.labels[i], "tick-label", "middle");
  }
  svg.text(left + w / 2, x_label_y, map.x_label, "axis-label", "middle", "font-size=\"13\"");
  svg.out << "</g>\n<g class=\"y-axis\">\n";
  for (size_t i = 0; i < yt.pos.size(); ++i) {
    const double y = top + yt.pos[i] * cell;
    svg.line(left - 4, y, left, y, "#333333");
    svg.text(left - 7, y + 4, yt.labels[i], "tick-label", "end");
  }
  svg.text(16, top + h / 2, map.y_label, "axis-label", "middle",
           "font-size=\"13\" transform=\"rotate(-90 16 " + num(top + h / 2) + ")\"");
  svg.out << "</g>\n";

  if (!categorical) {
    svg.out << "<g class=\"colorbar\">\n<defs><linearGradient id=\"colorbar-gradient\" x1=\"0\" y1=\"1\" "
            << "x2=\"0\" y2=\"0\">";
    for (int i = 0; i < 5; ++i)
      svg.out << "<stop offset=\"" << num(i / 4.0) << "\" stop-color=\"" << hex(kViridis[i]) << "\"/>";
    svg.out << "</linearGradient></defs>\n";
    svg.rect(bar_x, top, 14, bar_h, "url(#colorbar-gradient)", "stroke=\"#333333\" stroke-width=\"1\"");
    cs.pixel_lo = top + bar_h;
    cs.pixel_hi = top;
    for (size_t i = 0; i < cs.ticks.size(); ++i) {
      const double y = cs.to_pixel(cs.ticks[i]);
      svg.line(bar_x + 14, y, bar_x + 18, y, "#333333");
      svg.text(bar_x + 21, y + 4, cs.labels[i], "tick-label", "start");
    }
    const double cy = top + bar_h / 2;
    svg.text(bar_label_x, cy, map.colorbar_label + (map.log_colors ? " (log scale)" : ""), "axis-label",
             "middle", "font-size=\"13\" transform=\"rotate(-90 " + num(bar_label_x) + ' ' + num(cy) + ")\"");
    svg.out << "</g>\n";
  }
  svg.out << "<g class=\"legend\">\n";
  const double swatch_top = top + (categorical ? 0.0 : bar_h + 10);
  for (size_t i = 0; i < swatches.size(); ++i) {
    const double y = swatch_top + 22.0 * double(i);
    svg.out << "<g class=\"legend-entry\">\n";
    svg.rect(bar_x, y, 14, 14, hex(swatches[i].second), "stroke=\"#333333\" stroke-width=\"1\"");
    svg.text(bar_x + 20, y + 11, swatches[i].first, "legend-label");
    svg.out << "</g>\n";
  }
  if (separators) {
    const double y = swatch_top + 22.0 * double(swatches.size()) + 7;
    svg.out << "<g class=\"legend-entry\">\n";
    svg.line(bar_x, y, bar_x + 14, y, hex(separator_color), 1.5);
    svg.text(bar_x + 20, y + 4, map.separator_name, "legend-label");
    svg.out << "</g>\n";
  }
  svg.out << "</g>\n";
  svg.end();
  return svg.out.str();
}

std::string scatter_plot_svg(const ScatterPlot& plot) {
  std::vector<double> xs, ys;
  for (const ScatterPoint& p : plot.points) xs.push_back(p.x), ys.push_back(p.y);
  Scale sx = make_scale(plot.x, xs, 0.06, std::max(2, plot.plot_width / 80), "x");
  Scale sy = make_scale(plot.y, ys, 0.06, std::max(2, plot.plot_height / 50), "y");
  std::vector<std::string> skipped;
  for (const ScatterPoint& p : plot.points)
    if (!sx.usable(p.x) || !sy.usable(p.y))
      skipped.push_back(p.label + " (" + (std::isnan(p.x) || std::isnan(p.y) ? "NaN" : std::isinf(p.x) || std::isinf(p.y) ? "infinite" : "<= 0 on a log axis") + ")");
  std::vector<size_t> frontier;
  if (plot.frontier) {
    std::vector<ScatterPoint> drawable;
    std::vector<size_t> index;
    for (size_t i = 0; i < plot.points.size(); ++i)
      if (sx.usable(plot.points[i].x) && sy.usable(plot.points[i].y))
        drawable.push_back(plot.points[i]), index.push_back(i);
    for (size_t i : pareto_frontier(drawable)) frontier.push_back(index[i]);
  }
  const Rgb point_color{31, 119, 180}, frontier_color{214, 39, 40};
  std::vector<LegendEntry> entries{{plot.points_name, point_color, false, false, true, true}};
  if (plot.frontier) entries.push_back({plot.frontier_name, frontier_color, true, false, true, false});
  const LegendLayout legend = layout_legend(entries, plot.plot_height);
  std::vector<std::string> notes;
  if (!skipped.empty()) notes.push_back("not drawn: " + join_limited(skipped, 6));
  const Frame f = make_frame(plot.title, sx, sy, plot.plot_width, plot.plot_height, legend, notes);

  Writer svg;
  svg.begin(f.width, f.height);
  svg.title(f.width, plot.title);
  draw_axes(svg, sx, sy, plot.x, plot.y, f.left, f.top, f.w, f.h, f.y_label_x);
  if (frontier.size() > 1) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i : frontier) pts.push_back({sx.to_pixel(plot.points[i].x), sy.to_pixel(plot.points[i].y)});
    svg.out << "<g class=\"frontier\">\n";
    svg.polyline(pts, hex(frontier_color), 1.8, false);
    svg.out << "</g>\n";
  }
  // Labels go beside their point, on the first side where they overlap no other label, point
  // or the frame; the last candidate is used when none is free.
  struct Box {
    double x0, y0, x1, y1;
    bool hits(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  };
  std::vector<Box> taken;
  for (const ScatterPoint& p : plot.points)
    if (sx.usable(p.x) && sy.usable(p.y)) {
      const double x = sx.to_pixel(p.x), y = sy.to_pixel(p.y);
      taken.push_back({x - 4, y - 4, x + 4, y + 4});
    }
  svg.out << "<g class=\"points\">\n";
  for (size_t i = 0; i < plot.points.size(); ++i) {
    const ScatterPoint& p = plot.points[i];
    if (!sx.usable(p.x) || !sy.usable(p.y)) continue;
    const double x = sx.to_pixel(p.x), y = sy.to_pixel(p.y);
    const bool on_frontier = std::find(frontier.begin(), frontier.end(), i) != frontier.end();
    svg.circle(x, y, 4, on_frontier ? hex(frontier_color) : "#ffffff", hex(on_frontier ? frontier_color : point_color), "point");
    if (p.label.empty()) continue;
    const double tw = text_width(p.label, 6.5);
    const Box candidates[] = {{x + 6, y - 16, x + 6 + tw, y - 4}, {x + 6, y + 2, x + 6 + tw, y + 14},
                              {x - 6 - tw, y - 16, x - 6, y - 4}, {x - 6 - tw, y + 2, x - 6, y + 14}};
    Box chosen = candidates[0];
    for (const Box& b : candidates) {
      const bool inside = b.x0 >= f.left && b.x1 <= f.left + f.w && b.y0 >= f.top && b.y1 <= f.top + f.h;
      const bool free = std::none_of(taken.begin(), taken.end(), [&](const Box& o) { return b.hits(o); });
      chosen = b;
      if (inside && free) break;
    }
    taken.push_back(chosen);
    svg.text(chosen.x0, chosen.y1 - 2, p.label, "point-label", "start", "font-size=\"11\"");
  }
  svg.out << "</g>\n";
  draw_legend(svg, entries, legend, f.left + f.w + 16, f.top);
  draw_note(svg, notes, f.left, f.top + f.h + 62);
  svg.end();
  return svg.out.str();
}

void write_svg(const std::string& path, const std::string& svg) { write_text_atomically(path, svg); }

}  // namespace sparseplan::svg
