#include "plan/tile_geometry.h"

#include <algorithm>

#include "plan/limits.h"

namespace sparseplan {

TileGeometry make_tile_geometry(const Grid& grid, const std::array<int, 3>& tile, int block_size,
                                const TextLayout& text) {
  const GeometryCounts c = check_geometry(grid, tile, block_size, text);
  // Within the limits every count fits int: blocks <= kMaxBlocks, tokens <= kMaxSequenceTokens.
  TileGeometry g;
  g.grid = grid;
  g.tile = tile;
  g.block_size = block_size;
  g.text = text;
  g.tiles_f = int(c.tiles_f);
  g.tiles_h = int(c.tiles_h);
  g.tiles_w = int(c.tiles_w);
  g.blocks_per_tile = int(c.blocks_per_tile);
  g.video_blocks = int(c.video_blocks);
  g.text_blocks = int(c.text_blocks);
  g.total_blocks = int(c.total_blocks);
  return g;
}

TileGeometry make_tile_geometry(const Plan& plan) {
  return make_tile_geometry(plan.grid, plan.tile, plan.block_size, plan.text);
}

TokenOrder make_token_order(const TileGeometry& g) {
  TokenOrder order;
  const int64_t video_tokens = g.grid.tokens();
  const int64_t seq = g.sequence_tokens();
  order.slot_of_token.assign(size_t(seq), -1);
  order.token_of_slot.assign(size_t(g.padded_tokens()), -1);
  order.block_valid.assign(size_t(g.total_blocks), 0);

  const int64_t video_token_offset = g.text.position == TextPosition::Before ? g.text.tokens : 0;
  const int64_t text_token_offset = g.text.position == TextPosition::Before ? 0 : video_tokens;
  const int64_t tile_slots = int64_t(g.blocks_per_tile) * g.block_size;
  const int64_t video_slot_base = int64_t(g.video_block_offset()) * g.block_size;

  for (int t = 0; t < g.num_tiles(); ++t) {
    const TileCoord c = g.tile_coord(t);
    int64_t slot = video_slot_base + t * tile_slots;
    const int f0 = c.f * g.tile[0], h0 = c.h * g.tile[1], w0 = c.w * g.tile[2];
    const int f1 = std::min(f0 + g.tile[0], g.grid.frames);
    const int h1 = std::min(h0 + g.tile[1], g.grid.height);
    const int w1 = std::min(w0 + g.tile[2], g.grid.width);
    int64_t count = 0;
    for (int f = f0; f < f1; ++f)
      for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) {
          const int64_t token =
              video_token_offset + (int64_t(f) * g.grid.height + h) * g.grid.width + w;
          order.slot_of_token[size_t(token)] = int32_t(slot + count);
          order.token_of_slot[size_t(slot + count)] = int32_t(token);
          ++count;
        }
    const int first_block = g.video_block_offset() + t * g.blocks_per_tile;
    for (int b = 0; b < g.blocks_per_tile; ++b) {
      const int64_t rest = count - int64_t(b) * g.block_size;
      order.block_valid[size_t(first_block + b)] =
          int32_t(std::max<int64_t>(0, std::min<int64_t>(rest, g.block_size)));
    }
  }
  const int64_t text_slot_base = int64_t(g.text_block_offset()) * g.block_size;
  for (int64_t i = 0; i < g.text.tokens; ++i) {
    order.slot_of_token[size_t(text_token_offset + i)] = int32_t(text_slot_base + i);
    order.token_of_slot[size_t(text_slot_base + i)] = int32_t(text_token_offset + i);
  }
  for (int b = 0; b < g.text_blocks; ++b) {
    const int64_t rest = g.text.tokens - int64_t(b) * g.block_size;
    order.block_valid[size_t(g.text_block_offset() + b)] =
        int32_t(std::min<int64_t>(rest, g.block_size));
  }
  return order;
}

std::vector<int32_t> tile_major_tokens(const TokenOrder& order) {
  std::vector<int32_t> tokens;
  tokens.reserve(order.slot_of_token.size());
  for (int32_t token : order.token_of_slot)
    if (token >= 0) tokens.push_back(token);
  return tokens;
}

TokenOrder tile_major_order(const TokenOrder& order) {
  TokenOrder rows = order;
  int32_t row = 0;
  for (size_t slot = 0; slot < rows.token_of_slot.size(); ++slot) {
    if (rows.token_of_slot[slot] < 0) continue;
    rows.slot_of_token[size_t(row)] = int32_t(slot);
    rows.token_of_slot[slot] = row++;
  }
  return rows;
}

}  // namespace sparseplan
