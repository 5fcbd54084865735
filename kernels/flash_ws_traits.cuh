// Compile-time shape of the warp-specialized Hopper attention kernel (FlashAttention-3
// structure): one producer warpgroup whose warps feed Q, K and V through TMA into shared-memory
// rings guarded by mbarriers (see flash_ws_producer.cuh for which warp loads what), and
// kConsumers warpgroups of 64 query rows each that run both products on wgmma. Tiles are
// [rows x 64] column blocks with the 128-byte swizzle, which is both the TMA box layout and
// the wgmma descriptor layout.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention_params.h"
#include "kernels/video_tiles.cuh"

namespace sparseplan::cuda {

template <typename Element_, int kHeadDim_, int kConsumers_, int kBlockN_, int kKStages_,
          int kVStages_>
struct WsTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumers = kConsumers_;
  static constexpr int kBlockN = kBlockN_;    // keys per pipeline stage
  static constexpr int kKStages = kKStages_;  // K ring depth
  static constexpr int kVStages = kVStages_;  // V ring depth
  static constexpr int kQStages = 2;          // the next tile's Q loads during this tile
  static constexpr int kItemStages = 4;       // work items drawn ahead (WsItems)
  static constexpr int kBlockM = 64 * kConsumers;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr int kNTiles = kBlockN / 8;   // n8 tiles of a score row block
  static constexpr int kDTiles = kHeadDim / 8;  // n8 tiles of an output row block
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKBytes = kBlockN * kHeadDim * 2;
  static constexpr int kQOffset = 0;
  static constexpr int kKOffset = kQOffset + kQStages * kQBytes;
  static constexpr int kVOffset = kKOffset + kKStages * kKBytes;
  static constexpr int kBarOffset = kVOffset + kVStages * kKBytes;
  // With two consumer warpgroups the 384 threads launch at 168 registers; the producer gives
  // most of its share to the consumers, which hold S, P and O at once (128 x 40 + 256 x 232
  // <= 64K registers).
  static constexpr int kProducerRegs = 40;
  static constexpr int kConsumerRegs = 232;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128");
  static_assert(kBlockN == 64 || kBlockN == 128, "key chunks of 64 or 128");
  static_assert(kQBytes % 1024 == 0 && kKBytes % 1024 == 0, "swizzle atoms are 1024 bytes");

  // Byte offset of 16-byte chunk `chunk` (8 elements) of row `row` in a [kRows x kHeadDim]
  // tile stored as kHeadDim / 64 swizzled column blocks.
  template <int kRows>
  __host__ __device__ static constexpr uint32_t sw128(int row, int chunk) {
    return uint32_t((chunk >> 3) * kRows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
  }
};

// The ring barriers, and per K/V stage how many leading keys of the chunk are real, so the
// consumers mask without recomputing the chunk (a CSR lookup and integer divisions per chunk:
// 7-19% slower, measured). The count is written and read with atomics (read_chunk_valid), the
// barriers order them: plain accesses ordered only by an mbarrier are hazards to racecheck.
// Every consumer warp reads it and arrives on k_empty after its read.
// A stage of two 64-key blocks hands over both counts: first | second << 8 | kSecondBlockValid.
constexpr int kSecondBlockValid = 1 << 16;

template <typename Traits>
struct WsBarriers {
  uint64_t q_full[2], q_empty[2];
  uint64_t k_full[Traits::kKStages], k_empty[Traits::kKStages];
  uint64_t v_full[Traits::kVStages], v_empty[Traits::kVStages];
  uint64_t v_landed[Traits::kVStages];  // a padded chunk's V arrived, padding not yet zeroed
  uint64_t item_full[Traits::kItemStages], item_empty[Traits::kItemStages];
  int valid[Traits::kKStages];
  int item[Traits::kItemStages];  // drawn work items, written and read with atomics like valid
};

template <typename Traits>
constexpr int ws_smem_bytes() {
  constexpr int bytes = Traits::kBarOffset + int(sizeof(WsBarriers<Traits>)) + 1024;  // + alignment
  static_assert(bytes <= 227 * 1024, "the rings exceed the shared memory of an sm_90 CTA");
  return bytes;
}

// Kernel arguments: the pointer/stride view plus TMA maps of Q (boxes of kBlockM rows), K and V
// (boxes of kBlockN rows) and O. Passed as a __grid_constant__ so the maps stay in parameter space.
// O is stored by TMA in boxes of 64 rows (one consumer warpgroup's rows). With the fused tile
// order (a.video.frames > 0) the video maps replace the four (video_tiles.cuh).
struct WsParams {
  AttentionParams a;
  CUtensorMap tma_q, tma_k, tma_v, tma_o;
  WsVideo video;
};

}  // namespace sparseplan::cuda
