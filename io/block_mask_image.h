// Pictures of block masks in tile order: one square per (query block, key block), attended
// blocks dark, text blocks tinted, thin lines between tile frames so windows are easy to read.
#pragma once

#include <string>

#include "plan/block_layout.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

void write_block_mask_png(const std::string& path, const BlockLayout& layout,
                          const TileGeometry& geometry);

}  // namespace sparseplan
