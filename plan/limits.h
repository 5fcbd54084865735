// The largest inputs sparseplan accepts, in one place: the plan loader (`validate`), the capture
// reader and writer, the model loader and the runtime all check against these, so a plan or
// capture that one command accepts is one every command can run, or refuses before allocating.
// Every count derived from a grid, tile and block size is computed here in 64-bit checked
// arithmetic; nothing downstream multiplies untrusted sizes in `int`. docs/plan-format.md
// ("Limits") lists the values.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "plan/plan.h"

namespace sparseplan {

constexpr int kMaxGridExtent = 1 << 16;        // frames, height or width of a grid, in tokens
constexpr int kMaxBlockSize = 256;             // tokens per block
constexpr int kMaxTextTokens = 1 << 20;        // text tokens inside the self-attention sequence
// Video plus text tokens of one sequence: token ids and padded slots are int32 with room.
constexpr int64_t kMaxSequenceTokens = int64_t(1) << 24;
// Blocks of the padded sequence (query blocks = key blocks). A dense head's CSR layout has
// blocks^2 entries indexed by int32 row offsets; 2^15 keeps that at 2^30. Real models are far
// below it (Wan2.1 720p, 81 frames, 4x8x8 tiles of 64-token blocks: 1440 blocks).
constexpr int kMaxBlocks = 1 << 15;
constexpr int kMaxLayers = 4096;
constexpr int kMaxHeads = 4096;
constexpr int kMaxHeadDim = 1024;
// Block mass of one head over all samples, read into memory at once by search and analyze
// (samples x blocks x blocks float32).
constexpr int64_t kMaxHeadMassBytes = int64_t(16) << 30;

// Tile and block counts of a grid cut into tiles and blocks, all in 64 bits.
struct GeometryCounts {
  int64_t tiles_f = 0, tiles_h = 0, tiles_w = 0;
  int64_t tiles = 0;
  int64_t blocks_per_tile = 0;
  int64_t video_blocks = 0;
  int64_t text_blocks = 0;
  int64_t total_blocks = 0;
  int64_t sequence_tokens = 0;  // video + text tokens
  int64_t padded_tokens = 0;    // total_blocks x block_size
};

// Checks a geometry against the limits and returns its counts; throws std::invalid_argument
// naming the field ("grid", "tile", "block_size", "text.tokens") and the limit it breaks. The
// one check that `validate`, the capture reader and the runtime share.
GeometryCounts check_geometry(const Grid& grid, const std::array<int, 3>& tile, int block_size,
                              const TextLayout& text);

// Elements of `matrices` float32 matrices of blocks x blocks each (one head's block mass over
// its samples, say); throws std::invalid_argument naming `what` when they would exceed
// kMaxHeadMassBytes, before anything is allocated.
int64_t check_mass_size(int64_t matrices, int64_t blocks, const std::string& what);

// Checks a model's attention shape against the limits; throws std::invalid_argument naming the
// field as `prefix` + "layers", "heads" or "head_dim" (prefix "model." in a plan, say).
void check_model_shape(int64_t layers, int64_t heads, int64_t head_dim, const std::string& prefix);

}  // namespace sparseplan
