#include <cmath>
#include <limits>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "runtime/block_mass_torch.h"
#include "kernels/attention_reference.h"
#include "model/attention_backend.h"
#include "plan/tile_geometry.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;

namespace {

// A grid with partial edge tiles for every tile shape below, and text after the video, so
// padding, empty blocks and text blocks are all exercised.
const Grid kGrid{6, 8, 10};
const TextLayout kText{TextPosition::After, 20};
const std::vector<std::array<int, 3>> kTiles{{4, 4, 4}, {2, 4, 8}, {1, 8, 8}, {4, 8, 8}};
constexpr int kBlock = 64;
constexpr int64_t kHeads = 2, kDim = 16;

struct Qkv {
  torch::Tensor q, k, v;
};

// Random, peaked attention (large q) so block masses differ a lot between blocks.
Qkv random_qkv(int64_t batch = 1, uint64_t seed = 1) {
  torch::manual_seed(seed);
  const int64_t n = kGrid.tokens() + kText.tokens;
  return {torch::randn({batch, n, kHeads, kDim}) * 2.0, torch::randn({batch, n, kHeads, kDim}),
          torch::randn({batch, n, kHeads, kDim})};
}

BlockMassOptions options(int64_t chunk_rows = 0, bool float64 = false) {
  BlockMassOptions o;
  o.block_size = kBlock;
  o.tiles = kTiles;
  o.chunk_rows = chunk_rows;
  o.float64 = float64;
  return o;
}

// Head h of batch element 0 as a contiguous [N, D] float32 row-major vector.
std::vector<float> head_rows(const torch::Tensor& x, int64_t h, int64_t b = 0) {
  torch::Tensor t = x[b].select(1, h).contiguous().to(torch::kFloat32);
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

// Float64 reference LSE of one head in model order.
std::vector<float> reference_lse(const Qkv& x, int64_t h, int64_t b = 0) {
  const auto q = head_rows(x.q, h, b), k = head_rows(x.k, h, b), v = head_rows(x.v, h, b);
  const int64_t n = x.q.size(1);
  ref::HeadShape shape{n, n, int(kDim), float(1.0 / std::sqrt(double(kDim)))};
  std::vector<float> out(static_cast<size_t>(n * kDim)), lse(static_cast<size_t>(n));
  ref::dense_attention(shape, q.data(), k.data(), v.data(), out.data(), lse.data());
  return lse;
}

// ref::block_mass over the padded tile-order sequence of `tile`: [nb x nb].
std::vector<float> reference_mass(const Qkv& x, int64_t h, const std::array<int, 3>& tile) {
  const TileGeometry g = make_tile_geometry(kGrid, tile, kBlock, kText);
  const TokenOrder order = make_token_order(g);
  const auto q = head_rows(x.q, h), k = head_rows(x.k, h);
  const std::vector<float> lse = reference_lse(x, h);
  const int64_t padded = g.padded_tokens();
  std::vector<float> qp(size_t(padded * kDim), 0.0f), kp(size_t(padded * kDim), 0.0f),
      lsep(size_t(padded), -std::numeric_limits<float>::infinity());
  for (int64_t slot = 0; slot < padded; ++slot) {
    const int32_t t = order.token_of_slot[size_t(slot)];
    if (t < 0) continue;
    std::copy_n(&q[size_t(t * kDim)], kDim, &qp[size_t(slot * kDim)]);
    std::copy_n(&k[size_t(t * kDim)], kDim, &kp[size_t(slot * kDim)]);
    lsep[size_t(slot)] = lse[size_t(t)];
  }
  ref::HeadShape shape{padded, padded, int(kDim), float(1.0 / std::sqrt(double(kDim)))};
  std::vector<float> mass(size_t(g.total_blocks) * size_t(g.total_blocks));
  ref::block_mass(shape, kBlock, kBlock, order.block_valid.data(), order.block_valid.data(),
                  qp.data(), kp.data(), lsep.data(), mass.data());
  return mass;
}

}  // namespace

TEST_CASE("block mass: every query block with tokens has a row summing to 1, empty ones are 0") {
  const Qkv x = random_qkv();
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(x.q, x.k, x.v);
  REQUIRE(r.tiles.size() == kTiles.size());
  for (size_t t = 0; t < kTiles.size(); ++t) {
    const TokenOrder order =
        make_token_order(make_tile_geometry(kGrid, kTiles[t], kBlock, kText));
    const torch::Tensor sums = r.tiles[t].mass.sum(-1);  // [B, H, nb]
    for (int64_t h = 0; h < kHeads; ++h)
      for (size_t qb = 0; qb < order.block_valid.size(); ++qb) {
        const double expected = order.block_valid[qb] > 0 ? 1.0 : 0.0;
        CHECK(sums[0][h][int64_t(qb)].item<double>() == Approx(expected).margin(1e-4));
      }
  }
}

TEST_CASE("block mass: a tile shape with empty blocks at the edges has some") {
  // 4x8x8 tiles on 6 frames: the last tile row has 2 frames = 128 tokens in 4 blocks.
  const TokenOrder order = make_token_order(make_tile_geometry(kGrid, {4, 8, 8}, kBlock, kText));
  CHECK(std::count(order.block_valid.begin(), order.block_valid.end(), 0) > 0);
}

TEST_CASE("block mass: the LSE equals the float64 reference") {
  const Qkv x = random_qkv();
  for (bool f64 : {false, true}) {
    const AttentionWithMass r = BlockMassComputer(kGrid, kText, options(0, f64))(x.q, x.k, x.v);
    for (int64_t h = 0; h < kHeads; ++h) {
      const std::vector<float> lse = reference_lse(x, h);
      const torch::Tensor got = r.lse[0][h];
      double worst = 0;
      for (size_t i = 0; i < lse.size(); ++i)
        worst = std::max(worst, std::abs(got[int64_t(i)].item<double>() - double(lse[i])));
      CHECK(worst < (f64 ? 1e-5 : 1e-4));
    }
  }
}

TEST_CASE("block mass: equals ref::block_mass for every tile shape") {
  const Qkv x = random_qkv();
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(x.q, x.k, x.v);
  for (size_t t = 0; t < kTiles.size(); ++t)
    for (int64_t h = 0; h < kHeads; ++h) {
      const std::vector<float> expected = reference_mass(x, h, kTiles[t]);
      const torch::Tensor got = r.tiles[t].mass[0][h].contiguous();
      REQUIRE(size_t(got.numel()) == expected.size());
      double worst = 0;
      for (size_t i = 0; i < expected.size(); ++i)
        worst = std::max(worst, std::abs(double(got.data_ptr<float>()[i]) - double(expected[i])));
      INFO("tile " << kTiles[t][0] << "x" << kTiles[t][1] << "x" << kTiles[t][2] << " head " << h);
      CHECK(worst < 1e-5);
    }
}

TEST_CASE("block mass: chunk boundaries do not change the result") {
  const Qkv x = random_qkv(2);
  const AttentionWithMass a = BlockMassComputer(kGrid, kText, options(7))(x.q, x.k, x.v);
  const AttentionWithMass b = BlockMassComputer(kGrid, kText, options(4096))(x.q, x.k, x.v);
  CHECK(torch::allclose(a.out, b.out, 1e-5, 1e-6));
  CHECK(torch::allclose(a.lse, b.lse, 1e-5, 1e-6));
  for (size_t t = 0; t < kTiles.size(); ++t)
    CHECK(torch::allclose(a.tiles[t].mass, b.tiles[t].mass, 1e-5, 1e-7));
}

TEST_CASE("block mass: the attention output equals dense attention") {
  const Qkv x = random_qkv(2);
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(x.q, x.k, x.v);
  const torch::Tensor expected = dense_attention(x.q, x.k, x.v);
  CHECK(r.out.sizes() == expected.sizes());
  CHECK(r.out.scalar_type() == torch::kFloat32);
  CHECK(torch::allclose(r.out, expected, 1e-4, 1e-5));
}

TEST_CASE("block mass: LSE statistics are the mean, min and max over each block's tokens") {
  const Qkv x = random_qkv();
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(x.q, x.k, x.v);
  const std::array<int, 3> tile = kTiles[0];
  const TileGeometry g = make_tile_geometry(kGrid, tile, kBlock, kText);
  const TokenOrder order = make_token_order(g);
  const int64_t h = 1;
  const std::vector<float> lse = reference_lse(x, h);
  for (int qb = 0; qb < g.total_blocks; ++qb) {
    double sum = 0, lo = 1e30, hi = -1e30;
    int n = 0;
    for (int i = 0; i < kBlock; ++i) {
      const int32_t t = order.token_of_slot[size_t(qb * kBlock + i)];
      if (t < 0) continue;
      sum += lse[size_t(t)];
      lo = std::min(lo, double(lse[size_t(t)]));
      hi = std::max(hi, double(lse[size_t(t)]));
      ++n;
    }
    REQUIRE(n > 0);
    CHECK(r.tiles[0].lse_mean[0][h][qb].item<double>() == Approx(sum / n).margin(1e-4));
    CHECK(r.tiles[0].lse_min[0][h][qb].item<double>() == Approx(lo).margin(1e-4));
    CHECK(r.tiles[0].lse_max[0][h][qb].item<double>() == Approx(hi).margin(1e-4));
  }
}

TEST_CASE("block mass: blocks without tokens get LSE statistics of -inf") {
  const Qkv x = random_qkv();
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(x.q, x.k, x.v);
  const TokenOrder order = make_token_order(make_tile_geometry(kGrid, {4, 8, 8}, kBlock, kText));
  for (size_t qb = 0; qb < order.block_valid.size(); ++qb)
    if (order.block_valid[qb] == 0) {
      CHECK(std::isinf(r.tiles[3].lse_mean[0][0][int64_t(qb)].item<float>()));
      CHECK(r.tiles[3].lse_max[0][0][int64_t(qb)].item<float>() < 0);
    }
}

TEST_CASE("block mass: bf16 inputs are accepted and computed in float32") {
  const Qkv x = random_qkv();
  const AttentionWithMass r = BlockMassComputer(kGrid, kText, options())(
      x.q.to(torch::kBFloat16), x.k.to(torch::kBFloat16), x.v.to(torch::kBFloat16));
  CHECK(r.out.scalar_type() == torch::kFloat32);
  CHECK(r.tiles[0].mass.sum(-1).max().item<double>() == Approx(1.0).margin(1e-4));
}

TEST_CASE("block mass: mismatched shapes and bad options are rejected with a message") {
  const Qkv x = random_qkv();
  const BlockMassComputer c(kGrid, kText, options());
  CHECK_THROWS_WITH(c(x.q.narrow(1, 0, 10), x.k.narrow(1, 0, 10), x.v.narrow(1, 0, 10)),
                    Catch::Contains("tokens"));
  CHECK_THROWS_WITH(c(x.q, x.k.narrow(3, 0, 8), x.v), Catch::Contains("[B, N, H, D]"));
  BlockMassOptions too_big = options();
  too_big.tiles = {{8, 8, 8}};
  CHECK_THROWS_AS(BlockMassComputer(kGrid, kText, too_big), std::invalid_argument);
  BlockMassOptions none = options();
  none.tiles.clear();
  CHECK_THROWS_AS(BlockMassComputer(kGrid, kText, none), std::invalid_argument);
}
