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

// Encodes a 2-byte-element tensor map. Returns false when it cannot be made (no encoder in the
// driver, an empty tensor, a stride the TMA unit cannot address); callers then use a kernel that
// does not need one.
bool encode_tile_map(CUtensorMap* map, const TileMapShape& shape);

}  // namespace sparseplan::cuda
