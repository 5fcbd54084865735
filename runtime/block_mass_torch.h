// Exact per-block attention mass of one self-attention call, in LibTorch (CPU or CUDA): dense
// attention chunked over query rows, so that only [heads x chunk x tokens] scores are held at a
// time. Per query row, P = exp(q k^T * scale - lse) with the exact LSE of the full row; columns
// are summed into the key blocks and rows averaged into the query blocks of the padded
// tile-order sequence (plan/tile_geometry.h) of every requested tile shape.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "plan/plan.h"
#include "runtime/dense_backend.h"

namespace sparseplan {

struct BlockMassOptions {
  int block_size = 64;
  std::vector<std::array<int, 3>> tiles{{4, 4, 4}};
  // Query rows per chunk; 0 picks a chunk that keeps the scores near 64 Mi elements.
  int64_t chunk_rows = 0;
  bool float64 = false;  // scores, LSE and sums in float64 (slower; for checks)
  // Kernels: on CUDA with block size 64 or 128 and head_dim 64 or 128 (and float64 off), the
  // dense kernel gives output and LSE and the block-mass kernel the mass, from bf16 q and k.
  // Reference: the chunked LibTorch computation below on every device.
  AttentionImpl attention = AttentionImpl::Kernels;
};

struct TileBlockMass {
  std::array<int, 3> tile{};
  int num_blocks = 0;
  // [B, H, nb, nb] float32 on the CPU: mean over the query block's tokens of the mass they put
  // on each key block; rows of blocks without tokens are zero, every other row sums to 1.
  torch::Tensor mass;
  // [B, H, nb] float32 on the CPU: LSE mean, min and max over each query block's tokens;
  // -inf for blocks without tokens.
  torch::Tensor lse_mean, lse_min, lse_max;
};

struct AttentionWithMass {
  torch::Tensor out;  // [B, N, H, D] float32 on q's device: the dense attention output
  torch::Tensor lse;  // [B, H, N] float32 on the CPU, model token order, natural log
  std::vector<TileBlockMass> tiles;  // in the order of BlockMassOptions::tiles
};

// Holds the token-to-block maps of every tile shape for one grid, so that repeated calls
// (every layer and step) reuse them.
class BlockMassComputer {
 public:
  // Throws std::invalid_argument for a bad grid, tile or block size (naming it).
  BlockMassComputer(const Grid& grid, const TextLayout& text, BlockMassOptions options);

  // q, k, v: [B, N, H, D] in model token order with N = grid tokens + text tokens; any float
  // dtype, any device. Throws std::invalid_argument on mismatched shapes.
  AttentionWithMass operator()(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v) const;
  // Whether a call with these inputs runs on the kernels (see BlockMassOptions::attention).
  bool uses_kernels(const torch::Tensor& q) const;

  const Grid& grid() const { return grid_; }
  const TextLayout& text() const { return text_; }
  const BlockMassOptions& options() const { return options_; }
  int64_t tokens() const { return tokens_; }

 private:
  struct TileMaps {
    std::array<int, 3> tile{};
    int num_blocks = 0;
    int block_size = 0;
    std::vector<int64_t> column_of_slot;  // [padded]: model token, or N for padding
    std::vector<int64_t> block_of_token;  // [N]: block of each model token
    std::vector<float> block_valid;       // [nb]
  };
  AttentionWithMass with_kernels(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v) const;

  Grid grid_;
  TextLayout text_;
  BlockMassOptions options_;
  int64_t tokens_ = 0;
  std::vector<TileMaps> maps_;
};

}  // namespace sparseplan
