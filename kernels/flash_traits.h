// Compile-time shape of the FlashAttention-2 style kernels (sm80 mma.sync, run on sm_90a):
// 4 warps, each owning kMTiles m16 row tiles of the query tile, key chunks of kBlockN keys (32
// or 64: 32 frees the registers of half the score tile where head_dim 128 and two m-tiles
// per warp would otherwise spill), and the swizzled shared-memory layout of [rows x head_dim]
// bf16/fp16 tiles.
#pragma once

#include <cstdint>

namespace sparseplan::cuda {

template <typename Element_, int kHeadDim_, int kMTiles_, int kBlockN_ = 64>
struct FlashTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kMTiles = kMTiles_;  // m16 tiles per warp
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kMTiles * kWarps;  // 64 or 128 query rows
  static constexpr int kBlockN = kBlockN_;  // keys per pipeline stage
  static constexpr int kNTiles = kBlockN / 8;  // n8 tiles of the score tile
  static constexpr int kChunksPerRow = kHeadDim / 8;     // 16-byte chunks per row
  static constexpr int kDTiles = kHeadDim / 8;           // n8 tiles over head_dim (P x V)
  static constexpr int kKSteps = kHeadDim / 16;          // k16 steps over head_dim (Q x K^T)
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKVTileBytes = kBlockN * kRowBytes;
  // Q, then two K stages, then two V stages.
  static constexpr int kSmemBytes = kQBytes + 4 * kKVTileBytes;
  static constexpr int kMassSmemBytes = kQBytes + 2 * kKVTileBytes;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kBlockN == 32 || kBlockN == 64, "key chunks of 32 or 64");

  // Byte offset of 16-byte chunk `chunk` of row `row`: XOR swizzle so the 8 rows an ldmatrix
  // phase reads hit 8 distinct bank groups.
  __host__ __device__ static constexpr uint32_t offset(int row, int chunk) {
    return uint32_t(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
  }
};

}  // namespace sparseplan::cuda
