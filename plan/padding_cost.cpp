#include "plan/padding_cost.h"

namespace sparseplan {

double PaddingCost::padded_fraction() const {
  return tokens == 0 ? 0.0 : double(padding()) / double(tokens);
}

double PaddingCost::work_factor() const {
  if (tokens == 0) return 1.0;
  const double r = double(slots) / double(tokens);
  return r * r;
}

PaddingCost padding_cost(const TileGeometry& g) {
  PaddingCost c;
  c.tokens = g.sequence_tokens();
  c.slots = g.padded_tokens();
  c.blocks = g.total_blocks;
  for (int32_t valid : make_token_order(g).block_valid) {
    if (valid < g.block_size) ++c.partial_blocks;
    if (valid == 0) ++c.empty_blocks;
  }
  return c;
}

}  // namespace sparseplan
