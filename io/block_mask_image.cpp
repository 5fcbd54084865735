#include "io/block_mask_image.h"

#include <algorithm>

#include "io/png_writer.h"
#include "io/svg_plot.h"

namespace sparseplan {

void write_block_mask_png(const std::string& path, const BlockLayout& layout,
                          const TileGeometry& g) {
  const int n = layout.num_q_blocks;
  const int scale = std::max(1, 768 / std::max(1, n));
  const int size = n * scale;
  std::vector<uint8_t> rgb(size_t(size) * size_t(size) * 3, 255);
  const int blocks_per_frame = g.tiles_h * g.tiles_w * g.blocks_per_tile;
  const auto is_text = [&](int b) {
    return b >= g.text_block_offset() && b < g.text_block_offset() + g.text_blocks;
  };
  const auto frame_edge = [&](int b) {
    const int v = b - g.video_block_offset();
    return !is_text(b) && v > 0 && v % blocks_per_frame == 0;
  };
  const std::vector<uint8_t> mask = layout_to_mask(layout);
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < n; ++k) {
      const bool on = mask[size_t(q) * size_t(n) + size_t(k)] != 0;
      uint8_t r = 250, gr = 250, b = 250;
      if (on) r = gr = b = 20;
      if (is_text(q) || is_text(k)) {
        r = on ? 30 : 235;
        gr = on ? 90 : 240;
        b = on ? 200 : 250;
      }
      for (int y = q * scale; y < (q + 1) * scale; ++y)
        for (int x = k * scale; x < (k + 1) * scale; ++x) {
          uint8_t* p = &rgb[(size_t(y) * size_t(size) + size_t(x)) * 3];
          const bool line = (scale > 1 || n <= 768) &&
                            ((frame_edge(q) && y == q * scale) || (frame_edge(k) && x == k * scale));
          p[0] = line && !on ? 200 : r;
          p[1] = line && !on ? 120 : gr;
          p[2] = line && !on ? 120 : b;
        }
    }
  write_png_rgb(path, size, size, rgb);
}

std::vector<int> tile_frame_boundaries(const TileGeometry& g) {
  const int blocks_per_frame = g.tiles_h * g.tiles_w * g.blocks_per_tile;
  std::vector<int> b;
  for (int v = blocks_per_frame; v < g.video_blocks; v += blocks_per_frame) b.push_back(g.video_block_offset() + v);
  if (g.text_blocks > 0) {
    const int edge = g.video_block_offset() == 0 ? g.video_blocks : g.text_blocks;
    if (edge > 0 && edge < g.total_blocks) b.push_back(edge);
  }
  std::sort(b.begin(), b.end());
  return b;
}

void write_block_mask_svg(const std::string& path, const BlockLayout& layout,
                          const TileGeometry& g, const std::string& title) {
  const int n = layout.num_q_blocks;
  const auto is_text = [&](int b) {
    return b >= g.text_block_offset() && b < g.text_block_offset() + g.text_blocks;
  };
  const std::vector<uint8_t> mask = layout_to_mask(layout);
  svg::Heatmap map;
  map.title = title;
  map.x_label = "key block (tile order)";
  map.y_label = "query block (tile order)";
  map.rows = map.cols = n;
  map.categories = {{"skipped", "#fafafa"}, {"attended", "#141414"}};
  if (g.text_blocks > 0) map.categories.insert(map.categories.end(), {{"text, skipped", "#ebf0fa"}, {"text, attended", "#1e5ac8"}});
  map.values.resize(size_t(n) * size_t(n));
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < n; ++k) {
      const bool on = mask[size_t(q) * size_t(n) + size_t(k)] != 0;
      map.values[size_t(q) * size_t(n) + size_t(k)] = (on ? 1 : 0) + (is_text(q) || is_text(k) ? 2 : 0);
    }
  map.row_separators = map.col_separators = tile_frame_boundaries(g);
  map.separator_name = "new tile frame or text";
  map.max_side = 640;
  svg::write_svg(path, svg::heatmap_svg(map));
}

}  // namespace sparseplan
