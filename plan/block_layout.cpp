#include "plan/block_layout.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace sparseplan {
namespace {

// Start of a window of `extent` tiles centred on `centre`, shifted to stay inside [0, n).
int window_start(int centre, int extent, int n) {
  const int start = centre - (extent - 1) / 2;
  return std::max(0, std::min(start, n - extent));
}

// Key blocks of one query tile's window rule as sorted, disjoint ranges [begin, end) of video
// blocks. Ranges come out of the window in order (frame, then row of tiles); sinks and global
// blocks are merged in. Working on ranges keeps compilation proportional to the kept blocks.
void window_ranges(const TileGeometry& g, const WindowRule& rule, TileCoord q,
                   std::vector<std::pair<int, int>>& ranges) {
  ranges.clear();
  const int bpt = g.blocks_per_tile;
  for (int f = 0; f < g.tiles_f; ++f) {
    const int distance = std::abs(f - q.f);
    const bool sink = std::find(rule.sink_frames.begin(), rule.sink_frames.end(), f) !=
                      rule.sink_frames.end();
    if (sink) {
      const int first = g.tile_index({f, 0, 0}) * bpt;
      ranges.emplace_back(first, first + g.tiles_h * g.tiles_w * bpt);
      continue;
    }
    const auto group = std::find_if(rule.groups.begin(), rule.groups.end(), [&](const WindowGroup& w) {
      return distance <= w.max_frame_distance;
    });
    if (group == rule.groups.end()) continue;
    const int eh = std::min(group->tiles_h, g.tiles_h);
    const int ew = std::min(group->tiles_w, g.tiles_w);
    const int h0 = window_start(q.h, eh, g.tiles_h);
    const int w0 = window_start(q.w, ew, g.tiles_w);
    for (int h = h0; h < h0 + eh; ++h) {
      const int first = g.tile_index({f, h, w0}) * bpt;
      ranges.emplace_back(first, first + ew * bpt);
    }
  }
  if (rule.global_blocks.empty()) return;
  for (int b : rule.global_blocks) ranges.emplace_back(b, b + 1);
  std::sort(ranges.begin(), ranges.end());
  size_t out = 0;
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first <= ranges[out].second)
      ranges[out].second = std::max(ranges[out].second, ranges[i].second);
    else
      ranges[++out] = ranges[i];
  }
  ranges.resize(out + 1);
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

void append_range(std::vector<int32_t>& cols, int begin, int end) {
  const size_t old = cols.size();
  cols.resize(old + size_t(end - begin));
  std::iota(cols.begin() + std::ptrdiff_t(old), cols.end(), begin);
}

bool same_mask_rule(const HeadRule& a, const HeadRule& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case RuleKind::Dense:
    case RuleKind::Online:
      return true;
    case RuleKind::Blocks:
      return a.blocks.rows == b.blocks.rows;
    case RuleKind::Window: {
      const WindowRule &x = a.window, &y = b.window;
      if (x.groups.size() != y.groups.size()) return false;
      for (size_t i = 0; i < x.groups.size(); ++i)
        if (x.groups[i].max_frame_distance != y.groups[i].max_frame_distance ||
            x.groups[i].tiles_h != y.groups[i].tiles_h || x.groups[i].tiles_w != y.groups[i].tiles_w)
          return false;
      return x.sink_frames == y.sink_frames && x.global_blocks == y.global_blocks;
    }
  }
  return false;
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
  const bool text_first = g.text.position == TextPosition::Before;
  std::vector<int32_t>& cols = layout.col_indices;

  std::vector<std::pair<int, int>> ranges;
  size_t tile_row_begin = 0, tile_row_end = 0;  // the previous query block's row, if same tile
  int row_tile = -1;
  for (int qb = 0; qb < g.total_blocks; ++qb) {
    const bool text_query = qb >= to && qb < to + g.text_blocks;
    const size_t begin = cols.size();
    if (dense || text_query) {
      append_range(cols, 0, g.total_blocks);
    } else if (rule.kind == RuleKind::Window && (qb - vo) / g.blocks_per_tile == row_tile) {
      // Blocks of one tile share the tile's row.
      cols.insert(cols.end(), cols.begin() + std::ptrdiff_t(tile_row_begin),
                  cols.begin() + std::ptrdiff_t(tile_row_end));
    } else {
      // Column indices stay sorted: text blocks come first exactly when they precede video.
      const auto push_text = [&] {
        append_range(cols, to, to + g.text_blocks);
      };
      if (text_first) push_text();
      if (rule.kind == RuleKind::Window) {
        row_tile = (qb - vo) / g.blocks_per_tile;
        window_ranges(g, rule.window, g.tile_coord(row_tile), ranges);
        for (const auto& [b0, b1] : ranges) append_range(cols, vo + b0, vo + b1);
      } else {
        for (int32_t kb : rule.blocks.rows[size_t(qb - vo)]) cols.push_back(vo + kb);
      }
      if (!text_first) push_text();
      tile_row_begin = begin;
      tile_row_end = cols.size();
    }
    layout.row_offsets.push_back(int32_t(cols.size()));
    if (qb == 0) {
      // Rows are similar in length: reserving from the first avoids regrowing a large vector.
      cols.reserve(cols.size() * size_t(g.total_blocks) * 5 / 4);
    }
  }
  return layout;
}

std::vector<BlockLayout> compile_layer_layouts(const Plan& plan, const TileGeometry& geometry,
                                               int layer) {
  if (layer < 0 || layer >= int(plan.layers.size()))
    throw std::invalid_argument("layer " + std::to_string(layer) + " outside [0, " +
                                std::to_string(plan.layers.size()) + ")");
  const std::vector<HeadRule>& rules = plan.layers[size_t(layer)];
  std::vector<BlockLayout> layouts;
  layouts.reserve(rules.size());
  for (size_t h = 0; h < rules.size(); ++h) {
    // Heads often share a rule (baselines, searched plans): compile each distinct rule once.
    size_t same = 0;
    while (same < h && !same_mask_rule(rules[same], rules[h])) ++same;
    layouts.push_back(same < h ? layouts[same] : compile_head_layout(geometry, rules[h]));
  }
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
