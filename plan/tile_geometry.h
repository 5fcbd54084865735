// Where every token of a (text +) video sequence sits once tokens are reordered from
// frame-major to tile-major order. Each 3D tile of (tf, th, tw) tokens fills whole blocks
// (tiles at the grid's edges may be partial; their blocks are padded), so a block never mixes
// tiles. Text tokens occupy their own blocks, before or after the video blocks.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "plan/plan.h"

namespace sparseplan {

struct TileCoord {
  int f = 0, h = 0, w = 0;
};

struct TileGeometry {
  Grid grid;
  std::array<int, 3> tile{1, 1, 1};
  int block_size = 64;
  TextLayout text;
  int tiles_f = 0, tiles_h = 0, tiles_w = 0;
  int blocks_per_tile = 0;
  int video_blocks = 0;
  int text_blocks = 0;
  int total_blocks = 0;

  // make_tile_geometry checks the limits of plan/limits.h, so tile and block counts fit int.
  int num_tiles() const { return tiles_f * tiles_h * tiles_w; }
  int64_t padded_tokens() const { return int64_t(total_blocks) * block_size; }
  int64_t sequence_tokens() const { return grid.tokens() + text.tokens; }
  // First block of the video region and of the text region in the padded sequence.
  int video_block_offset() const { return text.position == TextPosition::Before ? text_blocks : 0; }
  int text_block_offset() const {
    return text.position == TextPosition::Before ? 0 : video_blocks;
  }
  TileCoord tile_coord(int tile_index) const {
    return {tile_index / (tiles_h * tiles_w), (tile_index / tiles_w) % tiles_h,
            tile_index % tiles_w};
  }
  int tile_index(TileCoord c) const { return (c.f * tiles_h + c.h) * tiles_w + c.w; }
};

// Throws std::invalid_argument naming the bad value or the limit (plan/limits.h) it breaks.
TileGeometry make_tile_geometry(const Grid& grid, const std::array<int, 3>& tile, int block_size,
                                const TextLayout& text);
TileGeometry make_tile_geometry(const Plan& plan);

// The permutation between the model's token order (text before or after frame-major video)
// and the padded tile-order sequence the kernels run on.
struct TokenOrder {
  std::vector<int32_t> slot_of_token;  // [sequence_tokens]: padded slot of each model token
  std::vector<int32_t> token_of_slot;  // [padded_tokens]: model token in each slot, -1 = padding
  std::vector<int32_t> block_valid;    // [total_blocks]: valid tokens at the start of each block
};

TokenOrder make_token_order(const TileGeometry& geometry);

// The tile-major order: the padded tile order with its padding left out, so row r holds the
// r-th model token of the slots in order. A model can run its whole token stream in it (per-token
// layers do not care where a token sits) and hand attention tiles with no reorder.
// tile_major_tokens: [sequence_tokens] model token of each row. tile_major_order: the padded
// tile order's maps with tile-major rows in place of model tokens (slot_of_token: slot of each
// row; token_of_slot: row in each slot, -1 for padding; block_valid unchanged).
std::vector<int32_t> tile_major_tokens(const TokenOrder& order);
TokenOrder tile_major_order(const TokenOrder& order);

}  // namespace sparseplan
