// Pictures of block masks in tile order: one square per (query block, key block), attended
// blocks dark, text blocks tinted, thin lines between tile frames so windows are easy to read.
#pragma once

#include <string>
#include <vector>

#include "plan/block_layout.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

void write_block_mask_png(const std::string& path, const BlockLayout& layout,
                          const TileGeometry& geometry);

// The same mask as an SVG figure: titled, numbered query and key block axes, a legend of the
// cell colours and of the lines between tile frames.
void write_block_mask_svg(const std::string& path, const BlockLayout& layout,
                          const TileGeometry& geometry, const std::string& title);

// Block indices where a new tile frame (tf frames of video) starts, the first excluded, and
// where the text blocks start or end: the boundaries drawn on mask and mass figures.
std::vector<int> tile_frame_boundaries(const TileGeometry& geometry);

}  // namespace sparseplan
