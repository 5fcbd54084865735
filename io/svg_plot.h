// SVG figures a reader understands without a caption: line plots, heatmaps with a colour bar,
// and scatter plots with a Pareto frontier. Every figure has a title, labelled axes with
// numbered ticks, and a legend or a colour bar.
//
// Output is deterministic (fixed number formatting, no ids or dates that vary) and valid XML
// (all text escaped). Non-finite data never reach the SVG: points are left out and a note under
// the plot says how many and which; heatmap cells without a finite value are drawn as "no data".
// Elements carry classes (title, axis-label, tick-label, legend-entry, colorbar, note) so tests
// and style sheets can find them.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace sparseplan::svg {

struct Axis {
  std::string label;
  bool log = false;           // log10 scale; points <= 0 are left out
  double min = std::nan("");  // NaN: from the data, widened to round tick values
  double max = std::nan("");
};

struct Series {
  std::string name;           // legend entry
  std::vector<double> x, y;   // same length; a non-finite point breaks the line
  bool markers = false;       // a dot at every point
  bool dashed = false;
};

struct LinePlot {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
  int plot_width = 420;       // the data area in pixels; margins and legend come on top
  int plot_height = 280;
};

struct Category {
  std::string name;  // legend entry
  std::string color; // "#rrggbb"
};

// One cell per (row, column); row 0 at the top. Small maps are drawn as rectangles (and can
// carry their values as text), large ones as an embedded PNG with the same axes. With
// categories, every value is a category index and a legend of swatches replaces the colour bar.
struct Heatmap {
  std::string title;
  std::string x_label, y_label;
  int rows = 0, cols = 0;
  std::vector<double> values;               // rows x cols, row-major; non-finite: no data
  std::vector<std::string> row_names;       // tick labels; empty: numeric indices
  std::vector<std::string> col_names;
  int row_stride = 1, col_stride = 1;       // numeric indices: cell i covers [i*s, (i+1)*s)
  std::string colorbar_label;
  double vmin = std::nan(""), vmax = std::nan("");  // colour range; NaN: from the data
  bool log_colors = false;                  // log10 colour scale; values <= 0 get their own colour
  std::string nonpositive_name = "0";       // legend entry of that colour
  bool annotate = false;                    // write each value in its cell when it fits
  std::vector<Category> categories;
  std::vector<int> row_separators, col_separators;  // thin lines before these cells (frames, ...)
  std::string separator_name;               // legend entry of those lines
  int max_side = 480;                       // the longer side of the map in pixels
};

struct ScatterPoint {
  double x = 0.0, y = 0.0;
  std::string label;  // written beside the point
};

// Frontier: the points no other point beats in both coordinates, lower x and higher y being
// better (cheaper and more faithful), joined by a line in x order.
struct ScatterPlot {
  std::string title;
  Axis x, y;
  std::vector<ScatterPoint> points;
  bool frontier = true;
  std::string points_name = "points";
  std::string frontier_name = "Pareto frontier";
  int plot_width = 460;
  int plot_height = 320;
};

// Throws std::invalid_argument for malformed input (mismatched lengths, a non-finite or
// inverted explicit axis range, a log axis with a limit <= 0).
std::string line_plot_svg(const LinePlot& plot);
std::string heatmap_svg(const Heatmap& map);
std::string scatter_plot_svg(const ScatterPlot& plot);

// Writes through a temporary file and a rename.
void write_svg(const std::string& path, const std::string& svg);

// Indices of the frontier points of `points` (finite ones only), in increasing x.
std::vector<size_t> pareto_frontier(const std::vector<ScatterPoint>& points);

// Text safe inside XML elements and attribute values: & < > " ' escaped, control characters
// other than tab and newline replaced by '?'.
std::string xml_escape(const std::string& text);

// Compact numbers for labels: at most 4 significant digits, no trailing zeros ("0.25", "1e-05").
std::string format_number(double v);

}  // namespace sparseplan::svg
