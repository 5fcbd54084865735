// Pooled compensation of dropped key blocks (runtime/pooled_kv.h) against dense attention.
#include <cmath>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "runtime/block_sparse_torch.h"
#include "runtime/pooled_kv.h"
#include "tensor_checks.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;

namespace {

constexpr int64_t kB = 2, kH = 3, kD = 16, kBlock = 16, kBlocks = 5, kN = kBlock * kBlocks;

// Dense softmax attention over the keys whose row is valid; q, k, v [B, N, H, D].
torch::Tensor dense(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                    const torch::Tensor& key_valid) {
  torch::Tensor s = torch::einsum("bnhd,bmhd->bhnm", {q, k}) / std::sqrt(double(kD));
  s = s.masked_fill(key_valid.logical_not().view({1, 1, 1, -1}), -INFINITY);
  return torch::einsum("bhnm,bmhd->bnhd", {torch::softmax(s, -1), v});
}

// Each query block keeps itself and, every other head, the first block.
std::pair<torch::Tensor, torch::Tensor> diagonal_layout() {
  std::vector<int32_t> ro, ci;
  for (int64_t bh = 0; bh < kB * kH; ++bh) {
    ro.push_back(int32_t(ci.size()));
    for (int64_t i = 0; i < kBlocks; ++i) {
      if (bh % 2 == 1 && i != 0) ci.push_back(0);
      ci.push_back(int32_t(i));
      ro.push_back(int32_t(ci.size()));
    }
  }
  return {torch::tensor(ro, torch::kInt).view({kB, kH, kBlocks + 1}), torch::tensor(ci, torch::kInt)};
}

// Keys and values equal within each block (random across blocks); rows past `valid` of a block
// are padding and zero, as in tile order.
torch::Tensor block_constant(const std::vector<int32_t>& valid, double shift) {
  torch::Tensor per_block = torch::randn({kB, kBlocks, 1, kH, kD}) * 1.5 + shift;
  torch::Tensor x = per_block.expand({kB, kBlocks, kBlock, kH, kD}).clone();
  for (int64_t j = 0; j < kBlocks; ++j)
    x.select(1, j).narrow(1, valid[size_t(j)], kBlock - valid[size_t(j)]).zero_();
  return x.view({kB, kN, kH, kD});
}

torch::Tensor valid_rows(const std::vector<int32_t>& valid) {
  torch::Tensor rows = torch::zeros({kN}, torch::kBool);
  for (int64_t j = 0; j < kBlocks; ++j) rows.narrow(0, j * kBlock, valid[size_t(j)]).fill_(true);
  return rows;
}

}  // namespace

TEST_CASE("pooled compensation equals dense attention when every block's keys and values are equal") {
  torch::manual_seed(11);
  const std::vector<int32_t> valid{16, 16, 16, 16, 16};
  const torch::Tensor q = torch::randn({kB, kN, kH, kD}) * 1.2 + 0.1;
  const torch::Tensor k = block_constant(valid, -0.1), v = block_constant(valid, 0.3);
  const auto [ro, ci] = diagonal_layout();
  const auto [out, lse] = block_sparse_attention_torch(q, k, v, ro, ci, kBlock, kBlock, std::nullopt);
  const torch::Tensor want = dense(q, k, v, valid_rows(valid));
  REQUIRE(relative_l2(out, want) > 1e-2);  // the layout alone loses mass
  const torch::Tensor got = compensate_dropped_blocks(q, k, v, out, lse, kept_blocks(ro, ci, kBlocks),
                                                      kBlock, std::nullopt);
  CHECK(torch::isfinite(got).all().item<bool>());
  CHECK(relative_l2(got, want) < 1e-5);
}

TEST_CASE("pooled compensation weighs a partial block by its valid keys only") {
  torch::manual_seed(12);
  const std::vector<int32_t> valid{16, 7, 16, 16, 3};
  const torch::Tensor q = torch::randn({kB, kN, kH, kD}) - 0.2;
  const torch::Tensor k = block_constant(valid, 0.2), v = block_constant(valid, -0.4);
  const auto [ro, ci] = diagonal_layout();
  const torch::Tensor kv_valid = torch::tensor(valid, torch::kInt);
  const auto [out, lse] = block_sparse_attention_torch(q, k, v, ro, ci, kBlock, kBlock, kv_valid);
  const torch::Tensor got =
      compensate_dropped_blocks(q, k, v, out, lse, kept_blocks(ro, ci, kBlocks), kBlock, kv_valid);
  CHECK(relative_l2(got, dense(q, k, v, valid_rows(valid))) < 1e-5);
}

TEST_CASE("pooled compensation changes nothing when a layout keeps every block") {
  torch::manual_seed(13);
  const torch::Tensor q = torch::randn({kB, kN, kH, kD}), k = torch::randn({kB, kN, kH, kD}),
                      v = torch::randn({kB, kN, kH, kD});
  std::vector<int32_t> ro, ci;
  for (int64_t bh = 0; bh < kB * kH; ++bh) {
    ro.push_back(int32_t(ci.size()));
    for (int64_t i = 0; i < kBlocks; ++i) {
      for (int32_t j = 0; j < kBlocks; ++j) ci.push_back(j);
      ro.push_back(int32_t(ci.size()));
    }
  }
  const torch::Tensor row_offsets = torch::tensor(ro, torch::kInt).view({kB, kH, kBlocks + 1});
  const torch::Tensor col_indices = torch::tensor(ci, torch::kInt);
  const auto [out, lse] =
      block_sparse_attention_torch(q, k, v, row_offsets, col_indices, kBlock, kBlock, std::nullopt);
  const torch::Tensor got = compensate_dropped_blocks(
      q, k, v, out, lse, kept_blocks(row_offsets, col_indices, kBlocks), kBlock, std::nullopt);
  CHECK(relative_l2(got, out) < 1e-6);
}

TEST_CASE("pooled compensation of random keys moves the sparse result towards dense") {
  torch::manual_seed(14);
  const std::vector<int32_t> valid{16, 16, 16, 16, 16};
  const torch::Tensor q = torch::randn({kB, kN, kH, kD}) * 0.5;
  // Smooth within a block: a block-constant part plus small per-token noise.
  const torch::Tensor k = block_constant(valid, 0.0) + 0.1 * torch::randn({kB, kN, kH, kD});
  const torch::Tensor v = block_constant(valid, 0.0) + 0.1 * torch::randn({kB, kN, kH, kD});
  const auto [ro, ci] = diagonal_layout();
  const auto [out, lse] = block_sparse_attention_torch(q, k, v, ro, ci, kBlock, kBlock, std::nullopt);
  const torch::Tensor want = dense(q, k, v, valid_rows(valid));
  const torch::Tensor got = compensate_dropped_blocks(q, k, v, out, lse, kept_blocks(ro, ci, kBlocks),
                                                      kBlock, std::nullopt);
  CHECK(relative_l2(got, want) < 0.25 * relative_l2(out, want));
}

TEST_CASE("pooled compensation refuses mismatched shapes naming the argument") {
  const torch::Tensor q = torch::randn({1, kN, kH, kD});
  const torch::Tensor lse = torch::zeros({1, kH, kN});
  const torch::Tensor kept = torch::ones({1, kH, kBlocks, kBlocks}, torch::kBool);
  CHECK_THROWS_WITH(compensate_dropped_blocks(q, q, q, q, lse, kept, 24, std::nullopt),
                    Catch::Contains("not whole blocks of 24"));
  CHECK_THROWS_WITH(compensate_dropped_blocks(q, q, q, q, torch::zeros({1, kH, 3}), kept, kBlock,
                                              std::nullopt),
                    Catch::Contains("lse must be [B, H, Np]"));
  CHECK_THROWS_WITH(compensate_dropped_blocks(q, q, q, q, lse, kept.narrow(3, 0, 2), kBlock,
                                              std::nullopt),
                    Catch::Contains("kept must be [B, H, nqb, nkb]"));
  CHECK_THROWS_WITH(kept_blocks(torch::tensor({0, 1}, torch::kInt).view({1, 1, 2}),
                                torch::tensor({7}, torch::kInt), kBlocks),
                    Catch::Contains("column 7 outside [0, 5)"));
}
