// Host side of the TMA loads: tensor maps over [batch, rows, heads, head_dim] tensors with
// arbitrary 16-byte-multiple strides, read in boxes of [box_rows x 64] elements with the
// 128-byte swizzle that the wgmma shared-memory descriptors expect.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace sparseplan::cuda {

struct TileMapShape {
  const void* base = nullptr;
  int batch = 0, rows = 0, heads = 0, head_dim = 0;
  int64_t row_stride = 0, head_stride = 0, batch_stride = 0;  // elements
  int box_rows = 0;
};

// A [batch, frames, height, width, heads * head_dim] tensor (heads' rows adjacent: head stride
// head_dim) read in boxes of [box_f x box_h x box_w tokens x 64 elements], 128-byte swizzle: a
// box lands as box_f * box_h * box_w rows of 64 elements in (f, h, w) order.
struct VideoMapShape {
  const void* base = nullptr;
  int batch = 0, frames = 0, height = 0, width = 0, row_elements = 0;  // heads * head_dim
  int64_t row_stride = 0, batch_stride = 0;                           // elements
  int box_f = 0, box_h = 0, box_w = 0;
};

bool encode_video_map(CUtensorMap* map, const VideoMapShape& shape);

// Encodes a 2-byte-element tensor map. Returns false when it cannot be made (no encoder in the
// driver, an empty tensor, a stride the TMA unit cannot address); callers then use a kernel that
// does not need one.
bool encode_tile_map(CUtensorMap* map, const TileMapShape& shape);

}  // namespace sparseplan::cuda
