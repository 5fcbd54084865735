#include "runtime/block_layout.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sparseplan {
namespace {

// Start of a window of `extent` tiles centred on `centre`, shifted to stay inside [0, n).
int window_start(int centre, int extent, int n) {
  const int start = centre - (extent - 1) / 2;
  return std::max(0, std::min(start, n - extent));
}

// Marks the key blocks of one query tile's window rule in `row` (video block numbering).
void mark_window(const TileGeometry& g, const WindowRule& rule, TileCoord q,
                 std::vector<uint8_t>& row) {
  const auto mark_tile = [&](int f, int h, int w) {
    const int first = g.tile_index({f, h, w}) * g.blocks_per_tile;
    std::fill(row.begin() + first, row.begin() + first + g.blocks_per_tile, uint8_t(1));
  };
  int previous = -1;
  for (const WindowGroup& group : rule.groups) {
    const int eh = std::min(group.tiles_h, g.tiles_h);
    const int ew = std::min(group.tiles_w, g.tiles_w);
    const int h0 = window_start(q.h, eh, g.tiles_h);
    const int w0 = window_start(q.w, ew, g.tiles_w);
    for (int f = std::max(0, q.f - group.max_frame_distance);
         f <= std::min(g.tiles_f - 1, q.f + group.max_frame_distance); ++f) {
      const int distance = std::abs(f - q.f);
      if (distance <= previous) continue;
      for (int h = h0; h < h0 + eh; ++h)
        for (int w = w0; w < w0 + ew; ++w) mark_tile(f, h, w);
    }
    previous = group.max_frame_distance;
  }
  for (int f : rule.sink_frames)
    for (int h = 0; h < g.tiles_h; ++h)
      for (int w = 0; w < g.tiles_w; ++w) mark_tile(f, h, w);
  for (int b : rule.global_blocks) row[size_t(b)] = 1;
}

void check_rule_fits(const TileGeometry& g, const HeadRule& rule) {
  if (rule.kind == RuleKind::Window) {
    for (int f : rule.window.sink_frames)
      if (f < 0 || f >= g.tiles_f)
        throw std::invalid_argument("sink frame " + std::to_string(f) + " outside [0, " +
                                    std::to_string(g.tiles_f) + ") tile frames");
    for (int b : rule.window.global_blocks)
      if (b < 0 || b >= g.video_blocks)
        throw std::invalid_argument("global block " + std::to_string(b) + " outside [0, " +
                                    std::to_string(g.video_blocks) + ") video blocks");
  } else if (rule.kind == RuleKind::Blocks) {
    if (int(rule.blocks.rows.size()) != g.video_blocks)
      throw std::invalid_argument("blocks rule has " + std::to_string(rule.blocks.rows.size()) +
                                  " rows, the grid has " + std::to_string(g.video_blocks) +
                                  " video blocks");
    for (const auto& r : rule.blocks.rows)
      for (int32_t b : r)
        if (b < 0 || b >= g.video_blocks)
          throw std::invalid_argument("blocks rule column " + std::to_string(b) +
                                      " outside [0, " + std::to_string(g.video_blocks) + ")");
  }
}

}  // namespace

BlockLayout compile_head_layout(const TileGeometry& g, const HeadRule& rule) {
  check_rule_fits(g, rule);
  BlockLayout layout;
  layout.kind = rule.kind;
  layout.num_q_blocks = g.total_blocks;
  layout.num_k_blocks = g.total_blocks;
  layout.row_offsets.reserve(size_t(g.total_blocks) + 1);
  layout.row_offsets.push_back(0);
  const bool dense = rule.kind == RuleKind::Dense || rule.kind == RuleKind::Online;
  const int vo = g.video_block_offset();
  const int to = g.text_block_offset();

  std::vector<uint8_t> row(size_t(g.video_blocks));  // key blocks of the current query
  int cached_tile = -1;  // window rows depend only on the query tile

  for (int qb = 0; qb < g.total_blocks; ++qb) {
    const bool text_query = qb >= to && qb < to + g.text_blocks;
    if (dense || text_query) {
      for (int kb = 0; kb < g.total_blocks; ++kb) layout.col_indices.push_back(kb);
    } else {
      const int vqb = qb - vo;
      if (rule.kind == RuleKind::Window) {
        const int t = vqb / g.blocks_per_tile;
        if (t != cached_tile) {
          std::fill(row.begin(), row.end(), uint8_t(0));
          mark_window(g, rule.window, g.tile_coord(t), row);
          cached_tile = t;
        }
      } else {
        std::fill(row.begin(), row.end(), uint8_t(0));
        for (int32_t b : rule.blocks.rows[size_t(vqb)]) row[size_t(b)] = 1;
      }
      // Column indices stay sorted: text blocks come first exactly when they precede video.
      const auto push_text = [&] {
        for (int kb = 0; kb < g.text_blocks; ++kb) layout.col_indices.push_back(to + kb);
      };
      const bool text_first = g.text.position == TextPosition::Before;
      if (text_first) push_text();
      for (int kb = 0; kb < g.video_blocks; ++kb)
        if (row[size_t(kb)]) layout.col_indices.push_back(vo + kb);
      if (!text_first) push_text();
    }
    layout.row_offsets.push_back(int32_t(layout.col_indices.size()));
  }
  return layout;
}

std::vector<BlockLayout> compile_layer_layouts(const Plan& plan, const TileGeometry& geometry,
                                               int layer) {
  if (layer < 0 || layer >= int(plan.layers.size()))
    throw std::invalid_argument("layer " + std::to_string(layer) + " outside [0, " +
                                std::to_string(plan.layers.size()) + ")");
  std::vector<BlockLayout> layouts;
  layouts.reserve(plan.layers[size_t(layer)].size());
  for (const HeadRule& rule : plan.layers[size_t(layer)])
    layouts.push_back(compile_head_layout(geometry, rule));
  return layouts;
}

std::vector<uint8_t> layout_to_mask(const BlockLayout& layout) {
  std::vector<uint8_t> mask(size_t(layout.num_q_blocks) * size_t(layout.num_k_blocks), 0);
  for (int q = 0; q < layout.num_q_blocks; ++q)
    for (int32_t i = layout.row_offsets[size_t(q)]; i < layout.row_offsets[size_t(q) + 1]; ++i)
      mask[size_t(q) * size_t(layout.num_k_blocks) + size_t(layout.col_indices[size_t(i)])] = 1;
  return mask;
}

BlockLayout mask_to_layout(const std::vector<uint8_t>& mask, int num_q_blocks, int num_k_blocks) {
  if (mask.size() != size_t(num_q_blocks) * size_t(num_k_blocks))
    throw std::invalid_argument("mask: size does not match num_q_blocks x num_k_blocks");
  BlockLayout layout;
  layout.kind = RuleKind::Blocks;
  layout.num_q_blocks = num_q_blocks;
  layout.num_k_blocks = num_k_blocks;
  layout.row_offsets.push_back(0);
  for (int q = 0; q < num_q_blocks; ++q) {
    for (int k = 0; k < num_k_blocks; ++k)
      if (mask[size_t(q) * size_t(num_k_blocks) + size_t(k)]) layout.col_indices.push_back(k);
    layout.row_offsets.push_back(int32_t(layout.col_indices.size()));
  }
  return layout;
}

}  // namespace sparseplan
