// SVG figures: well-formed XML with titles, labelled axes, numbered ticks, legends and colour
// bars; text escaped; non-finite data never written; the Pareto frontier of a scatter plot.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "io/svg_plot.h"
#include "xml_check.h"

#include <catch2/catch.hpp>

using namespace sparseplan::svg;

namespace {

LinePlot two_series_plot() {
  LinePlot p;
  p.title = "Recall by density";
  p.x = {"density", false, 0.0, 1.0};
  p.y = {"recall", false, 0.5, 1.0};
  p.series.push_back({"head 0", {0.0, 0.5, 1.0}, {0.5, 0.9, 1.0}});
  p.series.push_back({"head 1", {0.0, 0.25, 1.0}, {0.5, 0.95, 1.0}});
  return p;
}

Heatmap small_heatmap() {
  Heatmap m;
  m.title = "Density map";
  m.x_label = "head";
  m.y_label = "layer";
  m.rows = 2;
  m.cols = 3;
  m.values = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  m.colorbar_label = "density";
  m.vmin = 0.0;
  m.vmax = 1.0;
  return m;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// Every number in a coordinate or size attribute parses as a finite number.
bool all_coordinates_finite(const std::vector<XmlElement>& doc) {
  for (const XmlElement& e : doc)
    for (const char* key : {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"}) {
      const std::string v = e.attr(key);
      if (v.empty() || v.back() == '%') continue;
      size_t used = 0;
      const double d = std::stod(v, &used);
      if (used != v.size() || !std::isfinite(d)) return false;
    }
  return true;
}

}  // namespace

TEST_CASE("a line plot is well-formed XML with numbered ticks on both axes") {
  const auto doc = parse_xml(line_plot_svg(two_series_plot()));
  REQUIRE(doc.front().name == "svg");
  CHECK(texts_in(doc, "x-axis", "tick-label") == std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"});
  CHECK(texts_in(doc, "y-axis", "tick-label") ==
        std::vector<std::string>{"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"});
}

TEST_CASE("a line plot has a title and both axis labels") {
  const auto doc = parse_xml(line_plot_svg(two_series_plot()));
  CHECK(texts_of_class(doc, "title") == std::vector<std::string>{"Recall by density"});
  CHECK(texts_in(doc, "x-axis", "axis-label") == std::vector<std::string>{"density"});
  CHECK(texts_in(doc, "y-axis", "axis-label") == std::vector<std::string>{"recall"});
}

TEST_CASE("a line plot has one named legend entry per series") {
  const auto doc = parse_xml(line_plot_svg(two_series_plot()));
  CHECK(count_class(doc, "legend-entry") == 2);
  CHECK(texts_in(doc, "legend", "legend-label") == std::vector<std::string>{"head 0", "head 1"});
}

TEST_CASE("an axis without limits spans the data with round ticks") {
  LinePlot p;
  p.x.label = "step";
  p.y.label = "ms";
  p.series.push_back({"a", {1, 2, 3}, {13.0, 17.0, 48.0}});
  const auto doc = parse_xml(line_plot_svg(p));
  CHECK(texts_in(doc, "y-axis", "tick-label") == std::vector<std::string>{"10", "20", "30", "40", "50"});
}

TEST_CASE("data of a single value get an axis around that value") {
  LinePlot p;
  p.series.push_back({"flat", {1, 2, 3}, {1e9, 1e9, 1e9}});
  const auto ticks = texts_in(parse_xml(line_plot_svg(p)), "y-axis", "tick-label");
  REQUIRE(ticks.size() >= 3);
  CHECK(std::find(ticks.begin(), ticks.end(), "1e+09") != ticks.end());
}

TEST_CASE("a log axis is ticked at powers of ten and says it is logarithmic") {
  LinePlot p;
  p.x = {"block size", true};
  p.y = {"time", true};
  p.series.push_back({"kernel", {16, 64, 256}, {0.5, 3.0, 40.0}, true});
  const auto doc = parse_xml(line_plot_svg(p));
  CHECK(texts_in(doc, "y-axis", "tick-label") == std::vector<std::string>{"0.1", "1", "10", "100"});
  CHECK(texts_in(doc, "x-axis", "axis-label") == std::vector<std::string>{"block size (log scale)"});
}

TEST_CASE("text with XML special characters is escaped and reads back unchanged") {
  LinePlot p = two_series_plot();
  p.title = "a<b & \"c\" 'd' >";
  p.series[0].name = "<head & 0>";
  const std::string svg = line_plot_svg(p);
  const auto doc = parse_xml(svg);
  CHECK(texts_of_class(doc, "title") == std::vector<std::string>{"a<b & \"c\" 'd' >"});
  CHECK(texts_in(doc, "legend", "legend-label").front() == "<head & 0>");
  CHECK(svg.find("<head") == std::string::npos);
}

TEST_CASE("control characters in labels are replaced so the XML stays valid") {
  CHECK(xml_escape(std::string("a\x01") + "b\tc") == "a?b\tc");
}

TEST_CASE("non-finite points are left out of a line plot and named in a note") {
  LinePlot p = two_series_plot();
  p.series[1].y[1] = std::nan("");
  p.series[1].x[2] = INFINITY;
  const std::string svg = line_plot_svg(p);
  const auto doc = parse_xml(svg);
  CHECK(lower(svg).find("nan") == std::string::npos);
  CHECK(all_coordinates_finite(doc));
  const auto notes = texts_of_class(doc, "note");
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("head 1 (2)") != std::string::npos);
}

TEST_CASE("points at or below zero are left out on a log axis") {
  LinePlot p;
  p.x = {"x", false};
  p.y = {"y", true};
  p.series.push_back({"s", {1, 2, 3}, {0.0, 1.0, 10.0}});
  const auto doc = parse_xml(line_plot_svg(p));
  CHECK(all_coordinates_finite(doc));
  CHECK(texts_of_class(doc, "note").size() == 1);
}

TEST_CASE("malformed plot input is rejected with a message") {
  LinePlot p = two_series_plot();
  p.series[0].y.pop_back();
  CHECK_THROWS_WITH(line_plot_svg(p), Catch::Contains("series 'head 0' has 3 x values and 2 y values"));
  LinePlot inverted = two_series_plot();
  inverted.x.min = 2.0;
  CHECK_THROWS_WITH(line_plot_svg(inverted), Catch::Contains("x axis minimum 2 is not below its maximum 1"));
  LinePlot infinite = two_series_plot();
  infinite.y.max = INFINITY;
  CHECK_THROWS_WITH(line_plot_svg(infinite), Catch::Contains("y axis maximum limit is infinite"));
  LinePlot log = two_series_plot();
  log.x.log = true;
  CHECK_THROWS_WITH(line_plot_svg(log), Catch::Contains("log x axis needs limits > 0"));
}

TEST_CASE("the same plot renders to the same bytes") {
  CHECK(line_plot_svg(two_series_plot()) == line_plot_svg(two_series_plot()));
  CHECK(heatmap_svg(small_heatmap()) == heatmap_svg(small_heatmap()));
}

TEST_CASE("a heatmap has a colour bar with numbered ticks and its label") {
  const auto doc = parse_xml(heatmap_svg(small_heatmap()));
  REQUIRE(count_class(doc, "colorbar") == 1);
  CHECK(texts_in(doc, "colorbar", "tick-label") == std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"});
  CHECK(texts_in(doc, "colorbar", "axis-label") == std::vector<std::string>{"density"});
}

TEST_CASE("a heatmap labels rows and columns with names or indices") {
  Heatmap m = small_heatmap();
  m.row_names = {"3", "7"};
  const auto doc = parse_xml(heatmap_svg(m));
  CHECK(texts_in(doc, "x-axis", "tick-label") == std::vector<std::string>{"0", "1", "2"});
  CHECK(texts_in(doc, "y-axis", "tick-label") == std::vector<std::string>{"3", "7"});
  CHECK(texts_in(doc, "x-axis", "axis-label") == std::vector<std::string>{"head"});
  CHECK(texts_in(doc, "y-axis", "axis-label") == std::vector<std::string>{"layer"});
}

TEST_CASE("an annotated heatmap writes each value in its cell") {
  Heatmap m = small_heatmap();
  m.annotate = true;
  const auto doc = parse_xml(heatmap_svg(m));
  CHECK(texts_of_class(doc, "cell-value") == std::vector<std::string>{"0.10", "0.20", "0.30", "0.40", "0.50", "0.60"});
}

TEST_CASE("heatmap cells without a finite value are drawn as no data") {
  Heatmap m = small_heatmap();
  m.values[1] = std::nan("");
  m.values[4] = INFINITY;
  const std::string svg = heatmap_svg(m);
  const auto doc = parse_xml(svg);
  CHECK(lower(svg).find("nan") == std::string::npos);
  CHECK(texts_in(doc, "legend", "legend-label") == std::vector<std::string>{"no data"});
  int grey = 0;
  for (const XmlElement& e : doc) grey += e.name == "rect" && e.attr("fill") == "#d9d9d9";
  CHECK(grey == 3);  // two cells and the legend swatch
}

TEST_CASE("a log colour scale names the colour of values at or below zero") {
  Heatmap m = small_heatmap();
  m.log_colors = true;
  m.vmin = 0.01;
  m.vmax = 100.0;
  m.values[0] = 0.0;
  m.nonpositive_name = "no mass";
  const auto doc = parse_xml(heatmap_svg(m));
  CHECK(texts_in(doc, "colorbar", "tick-label") == std::vector<std::string>{"0.01", "0.1", "1", "10", "100"});
  CHECK(texts_in(doc, "legend", "legend-label") == std::vector<std::string>{"no mass"});
}

TEST_CASE("a large heatmap embeds its cells as one PNG image under the same axes") {
  Heatmap m;
  m.title = "mass";
  m.x_label = "key block";
  m.y_label = "query block";
  m.rows = m.cols = 100;
  for (int i = 0; i < 100 * 100; ++i) m.values.push_back(i % 7);
  m.colorbar_label = "mass";
  const auto doc = parse_xml(heatmap_svg(m));
  int images = 0, rects = 0;
  for (const XmlElement& e : doc) {
    images += e.name == "image" && e.attr("xlink:href").rfind("data:image/png;base64,iVBORw0KGgo", 0) == 0;
    rects += e.name == "rect";
  }
  CHECK(images == 1);
  CHECK(rects < 10);
  CHECK(texts_in(doc, "x-axis", "tick-label").front() == "0");
  CHECK(texts_in(doc, "x-axis", "tick-label").size() >= 4);
}

TEST_CASE("a categorical heatmap has a swatch per category instead of a colour bar") {
  Heatmap m = small_heatmap();
  m.values = {0, 1, 1, 0, 1, 0};
  m.categories = {{"skipped", "#fafafa"}, {"attended", "#141414"}};
  m.col_separators = {2};
  m.separator_name = "new frame";
  const auto doc = parse_xml(heatmap_svg(m));
  CHECK(count_class(doc, "colorbar") == 0);
  CHECK(texts_in(doc, "legend", "legend-label") == std::vector<std::string>{"skipped", "attended", "new frame"});
  m.values[0] = 2;
  CHECK_THROWS_WITH(heatmap_svg(m), Catch::Contains("value 2 is not a category index below 2"));
}

TEST_CASE("the Pareto frontier keeps the points no other point beats in cost and fidelity") {
  const std::vector<ScatterPoint> pts = {{0.86, 20.6, "a"}, {0.94, 24.9, "b"}, {0.89, 31.2, "c"},
                                         {0.85, 28.9, "d"}, {0.70, 22.0, "e"}, {0.72, 19.0, "f"},
                                         {1.0, INFINITY, "dense"}, {0.5, std::nan(""), "broken"}};
  CHECK(pareto_frontier(pts) == std::vector<size_t>{4, 3, 2});
}

TEST_CASE("a scatter plot labels its points and draws the frontier with a legend") {
  ScatterPlot p;
  p.title = "PSNR against density";
  p.x = {"overall density"};
  p.y = {"PSNR (dB)"};
  p.points = {{0.5, 20.0, "sparse"}, {0.7, 30.0, "warm-up"}, {0.8, 25.0, "recall 0.95"}};
  p.points_name = "plans";
  const auto doc = parse_xml(scatter_plot_svg(p));
  CHECK(texts_of_class(doc, "point-label") == std::vector<std::string>{"sparse", "warm-up", "recall 0.95"});
  CHECK(count_class(doc, "point") == 3);
  CHECK(count_class(doc, "frontier") == 1);
  CHECK(texts_in(doc, "legend", "legend-label") == std::vector<std::string>{"plans", "Pareto frontier"});
  CHECK(!texts_in(doc, "x-axis", "tick-label").empty());
  CHECK(!texts_in(doc, "y-axis", "tick-label").empty());
}

TEST_CASE("a scatter point with an infinite value is named in a note, not drawn") {
  ScatterPlot p;
  p.x = {"density"};
  p.y = {"PSNR"};
  p.points = {{1.0, INFINITY, "dense"}, {0.5, 20.0, "sparse"}, {0.6, 22.0, "sparser"}};
  const std::string svg = scatter_plot_svg(p);
  const auto doc = parse_xml(svg);
  CHECK(count_class(doc, "point") == 2);
  CHECK(all_coordinates_finite(doc));
  CHECK(texts_of_class(doc, "note") == std::vector<std::string>{"not drawn: dense (infinite)"});
}

TEST_CASE("tick labels are compact numbers") {
  CHECK(format_number(0.25) == "0.25");
  CHECK(format_number(100.0) == "100");
  CHECK(format_number(1e-5) == "1e-05");
  CHECK(format_number(-0.0) == "0");
  CHECK_THROWS(format_number(std::nan("")));
}
