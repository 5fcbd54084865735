// The work padding adds. Partial tiles at the grid's edges fill whole blocks (tile_geometry.h),
// and the kernels run every block they are given, padded slots included: a layout of density d
// (kept blocks / all blocks of the padded sequence) costs d x (slots / tokens)^2 of dense
// attention over the model's own tokens. Wan2.1 480p (21 x 30 x 52) with 4x4x4 tiles pads 22%
// of its tokens, so every block costs it 1.49x.
#pragma once

#include <cstdint>

#include "plan/tile_geometry.h"

namespace sparseplan {

struct PaddingCost {
  int64_t tokens = 0;     // model tokens (video + text)
  int64_t slots = 0;      // tokens of the padded tile-order sequence
  int blocks = 0;
  int partial_blocks = 0;  // blocks with some padding (empty ones included)
  int empty_blocks = 0;    // blocks of padding only

  int64_t padding() const { return slots - tokens; }
  // Padding over model tokens (Wan2.1 480p, 4x4x4 tiles: 0.219).
  double padded_fraction() const;
  // Work of all blocks over dense attention on the model's tokens: (slots / tokens)^2.
  double work_factor() const;
  // Work of a layout of this density relative to dense attention on the model's tokens.
  double cost(double density) const { return density * work_factor(); }
};

PaddingCost padding_cost(const TileGeometry& geometry);

}  // namespace sparseplan
