#include "plan/limits.h"

#include <stdexcept>

#include "base/checked_math.h"

namespace sparseplan {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string shape_text(int64_t a, int64_t b, int64_t c) {
  return std::to_string(a) + "x" + std::to_string(b) + "x" + std::to_string(c);
}

void check_range(const std::string& field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high)
    throw std::invalid_argument(field + ": expected an integer in [" + std::to_string(low) + ", " +
                                std::to_string(high) + "], got " + std::to_string(value));
}

}  // namespace

GeometryCounts check_geometry(const Grid& grid, const std::array<int, 3>& tile, int block_size,
                              const TextLayout& text) {
  if (grid.frames <= 0 || grid.height <= 0 || grid.width <= 0)
    throw std::invalid_argument("grid: expected 3 positive integers (frames, height, width)");
  const std::pair<const char*, int> extents[] = {
      {"grid.frames", grid.frames}, {"grid.height", grid.height}, {"grid.width", grid.width}};
  for (const auto& [field, value] : extents) check_range(field, value, 1, kMaxGridExtent);
  check_range("block_size", block_size, 1, kMaxBlockSize);
  for (int i = 0; i < 3; ++i)
    if (tile[size_t(i)] <= 0) throw std::invalid_argument("tile: expected 3 positive integers");
  if (tile[0] > grid.frames || tile[1] > grid.height || tile[2] > grid.width)
    throw std::invalid_argument("tile: larger than the grid (" +
                                shape_text(tile[0], tile[1], tile[2]) + " vs " +
                                shape_text(grid.frames, grid.height, grid.width) + ")");
  check_range("text.tokens", text.tokens, 0, kMaxTextTokens);
  if ((text.position == TextPosition::None) != (text.tokens == 0))
    throw std::invalid_argument("text: position 'none' goes with 0 tokens and only with 0");

  // Extents are at most 2^16 each, so these products stay far inside 64 bits; checked_mul
  // guards the reasoning, not the common case.
  GeometryCounts c;
  const int64_t video_tokens =
      checked_mul(checked_mul(grid.frames, grid.height, "grid tokens"), grid.width, "grid tokens");
  c.sequence_tokens = checked_add(video_tokens, text.tokens, "sequence tokens");
  if (c.sequence_tokens > kMaxSequenceTokens)
    throw std::invalid_argument(
        "grid: " + shape_text(grid.frames, grid.height, grid.width) + " with " +
        std::to_string(text.tokens) + " text tokens is a sequence of " +
        std::to_string(c.sequence_tokens) + " tokens, more than the limit of " +
        std::to_string(kMaxSequenceTokens));
  c.tiles_f = ceil_div(grid.frames, tile[0]);
  c.tiles_h = ceil_div(grid.height, tile[1]);
  c.tiles_w = ceil_div(grid.width, tile[2]);
  c.tiles = checked_mul(checked_mul(c.tiles_f, c.tiles_h, "tiles"), c.tiles_w, "tiles");
  const int64_t tile_tokens =
      checked_mul(checked_mul(tile[0], tile[1], "tile tokens"), tile[2], "tile tokens");
  c.blocks_per_tile = ceil_div(tile_tokens, block_size);
  c.video_blocks = checked_mul(c.tiles, c.blocks_per_tile, "video blocks");
  c.text_blocks = ceil_div(text.tokens, block_size);
  c.total_blocks = checked_add(c.video_blocks, c.text_blocks, "blocks");
  if (c.total_blocks > kMaxBlocks)
    throw std::invalid_argument(
        "grid: " + shape_text(grid.frames, grid.height, grid.width) + " in tiles of " +
        shape_text(tile[0], tile[1], tile[2]) + " and blocks of " + std::to_string(block_size) +
        " tokens makes " + std::to_string(c.total_blocks) + " blocks, more than the limit of " +
        std::to_string(kMaxBlocks) + " (use larger tiles or blocks)");
  c.padded_tokens = checked_mul(c.total_blocks, block_size, "padded tokens");
  return c;
}

int64_t check_mass_size(int64_t matrices, int64_t blocks, const std::string& what) {
  if (matrices < 0 || blocks < 0)
    throw std::invalid_argument(what + ": negative size (" + std::to_string(matrices) +
                                " matrices of " + std::to_string(blocks) + " blocks)");
  const std::string too_large = what + ": " + std::to_string(matrices) + " block mass matrices of " +
                                std::to_string(blocks) + " x " + std::to_string(blocks) +
                                " blocks exceed the limit of " +
                                std::to_string(kMaxHeadMassBytes >> 30) + " GiB";
  int64_t elements = 0;
  try {
    elements = checked_mul(checked_mul(blocks, blocks, what), matrices, what);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(too_large);
  }
  if (elements > kMaxHeadMassBytes / int64_t(sizeof(float))) throw std::invalid_argument(too_large);
  return elements;
}

void check_model_shape(int64_t layers, int64_t heads, int64_t head_dim,
                       const std::string& prefix) {
  check_range(prefix + "layers", layers, 1, kMaxLayers);
  check_range(prefix + "heads", heads, 1, kMaxHeads);
  check_range(prefix + "head_dim", head_dim, 1, kMaxHeadDim);
}

}  // namespace sparseplan
