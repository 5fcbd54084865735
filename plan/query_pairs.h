// Which 64-token query blocks share a 128-row tile of the Hopper kernels
// (cuda::AttentionParams::q_pair_order). A paired tile walks the union of its two blocks' key
// blocks, two to a 128-key stage, so its cost is ceil(|union| / 2) stages however little of a
// stage each block attends. Blocks next to each other in tile order differ along w, but a
// window is often wider along h or f, and there a neighbour shares more of its keys: pairing
// by overlap saves stages (Wan 480p plans: bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <vector>

#include "plan/block_layout.h"
#include "plan/tile_geometry.h"

namespace sparseplan {

// Stages a paired tile walks for every pair (order[2i], order[2i + 1]) of the layout's query
// blocks (a last block of an odd count alone). Throws std::invalid_argument unless order is a
// permutation of the query blocks.
int64_t paired_stages(const BlockLayout& layout, const std::vector<int32_t>& order);

// A pair order for the layout: the one of fewest stages among consecutive pairs (0 with 1, 2
// with 3, ...; kept on ties), tiles paired with their neighbour along f, along h or along w,
// and a greedy matching of each block with a neighbour (the other blocks of its tile, the
// tiles next to its own, text blocks with the next text block) by the fewest stages the pair
// adds over its heavier block, then by the most key blocks shared. Blocks such a pairing
// leaves over pair in increasing order. Throws std::invalid_argument when the layout is not
// over the geometry's blocks.
std::vector<int32_t> pair_query_blocks(const BlockLayout& layout, const TileGeometry& geometry);

}  // namespace sparseplan
