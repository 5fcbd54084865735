// Block-sparse attention in plain LibTorch ops against the CPU reference.
#include <cmath>
#include <limits>
#include <vector>

#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "kernels/attention_reference.h"
#include "runtime/block_sparse_torch.h"
#include "tensor_checks.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;

namespace {

struct Case {
  int64_t B = 2, N = 200, H = 3, D = 16;
  int block = 64;
  torch::Tensor q, k, v;
  torch::Tensor row_offsets, col_indices, kv_valid;
  std::vector<int32_t> valid;
};

int64_t num_blocks(int64_t n, int block) { return (n + block - 1) / block; }

// Random q/k/v (never zeros) and a random layout with some empty rows; kv_valid masks part of
// some key blocks, as tile padding does.
Case random_case(uint64_t seed, int block = 64, int64_t N = 200, int64_t D = 16) {
  Case c;
  c.D = D;
  c.block = block;
  c.N = N;
  torch::manual_seed(seed);
  c.q = torch::randn({c.B, c.N, c.H, c.D}) * 1.3 + 0.1;
  c.k = torch::randn({c.B, c.N, c.H, c.D}) * 1.3 - 0.1;
  c.v = torch::randn({c.B, c.N, c.H, c.D}) + 0.2;
  const int64_t nb = num_blocks(c.N, block);
  std::vector<int32_t> ro, ci;
  uint64_t state = seed * 2654435761u + 1;
  auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int64_t bh = 0; bh < c.B * c.H; ++bh) {
    ro.push_back(int32_t(ci.size()));
    for (int64_t qb = 0; qb < nb; ++qb) {
      if (next() % 5 != 0)  // one row in five stays empty
        for (int64_t kb = 0; kb < nb; ++kb)
          if (kb == qb || next() % 2 == 0) ci.push_back(int32_t(kb));
      ro.push_back(int32_t(ci.size()));
    }
  }
  // Per head nb + 1 global offsets; a head's first equals the previous head's last.
  c.row_offsets = torch::tensor(ro, torch::kInt).view({c.B, c.H, nb + 1});
  c.col_indices = torch::tensor(ci, torch::kInt);
  for (int64_t j = 0; j < nb; ++j)
    c.valid.push_back(j % 3 == 1 ? block / 2 : std::min<int32_t>(block, int32_t(c.N - j * block)));
  c.kv_valid = torch::tensor(c.valid, torch::kInt);
  return c;
}

// The reference, one (batch, head) at a time.
void reference(const Case& c, torch::Tensor& out, torch::Tensor& lse) {
  out = torch::empty({c.B, c.N, c.H, c.D});
  lse = torch::empty({c.B, c.H, c.N});
  const int64_t nb = num_blocks(c.N, c.block);
  ref::HeadShape shape{c.N, c.N, int(c.D), float(1.0 / std::sqrt(double(c.D)))};
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const torch::Tensor qh = c.q.select(0, b).select(1, h).contiguous();
      const torch::Tensor kh = c.k.select(0, b).select(1, h).contiguous();
      const torch::Tensor vh = c.v.select(0, b).select(1, h).contiguous();
      const int32_t* ro = c.row_offsets.data_ptr<int32_t>() + (b * c.H + h) * (nb + 1);
      std::vector<int32_t> local(ro, ro + nb + 1);
      for (auto& x : local) x -= ro[0];
      ref::BlockSparsity sp{c.block, c.block, local.data(), c.col_indices.data_ptr<int32_t>() + ro[0],
                            c.valid.data()};
      torch::Tensor oh = torch::empty({c.N, c.D}), lh = torch::empty({c.N});
      ref::block_sparse_attention(shape, sp, qh.data_ptr<float>(), kh.data_ptr<float>(),
                                  vh.data_ptr<float>(), oh.data_ptr<float>(), lh.data_ptr<float>());
      out.select(0, b).select(1, h).copy_(oh);
      lse.select(0, b).select(0, h).copy_(lh);
    }
}

// Finite LSEs match closely; -inf exactly where the reference has -inf.
void check_lse(const torch::Tensor& got, const torch::Tensor& want, double tolerance = 1e-4) {
  const torch::Tensor empty = torch::isinf(want);
  CHECK(torch::equal(torch::isinf(got), empty));
  CHECK(torch::isnan(got).sum().item<int64_t>() == 0);
  const torch::Tensor diff = (got - want).masked_fill(empty, 0).abs().max();
  CHECK(diff.item<double>() < tolerance);
}

}  // namespace

TEST_CASE("torch block-sparse attention equals the reference with padding and empty rows") {
  const Case c = random_case(7);
  torch::Tensor want_out, want_lse;
  reference(c, want_out, want_lse);
  const auto [out, lse] = block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets,
                                                       c.col_indices, 64, 64, c.kv_valid);
  REQUIRE(out.sizes() == c.q.sizes());
  CHECK(torch::isnan(out).sum().item<int64_t>() == 0);
  CHECK(relative_l2(out, want_out) < 1e-5);
  check_lse(lse, want_lse);
}

TEST_CASE("torch block-sparse attention gives zeros and LSE -inf to rows without keys") {
  const Case c = random_case(11);
  torch::Tensor want_out, want_lse;
  reference(c, want_out, want_lse);
  const auto [out, lse] = block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets,
                                                       c.col_indices, 64, 64, c.kv_valid);
  const torch::Tensor empty_rows = torch::isinf(want_lse);  // [B, H, N]
  REQUIRE(empty_rows.any().item<bool>());
  CHECK(torch::isinf(lse).eq(empty_rows).all().item<bool>());
  const torch::Tensor out_bhn = out.permute({0, 2, 1, 3});
  CHECK(out_bhn.index({empty_rows}).abs().max().item<float>() == 0.0f);
}

TEST_CASE("torch block-sparse attention runs block sizes the kernels do not (16, 32)") {
  for (int block : {16, 32}) {
    const Case c = random_case(23 + block, block, 90);
    torch::Tensor want_out, want_lse;
    reference(c, want_out, want_lse);
    const auto [out, lse] = block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets,
                                                         c.col_indices, block, block, c.kv_valid);
    CHECK(relative_l2(out, want_out) < 1e-5);
    check_lse(lse, want_lse);
  }
}

TEST_CASE("torch block-sparse attention gives the same answer in small batches of rows") {
  const Case c = random_case(5);
  const auto [whole, whole_lse] = block_sparse_attention_torch(
      c.q, c.k, c.v, c.row_offsets, c.col_indices, 64, 64, c.kv_valid);
  const auto [pieces, pieces_lse] = block_sparse_attention_torch(
      c.q, c.k, c.v, c.row_offsets, c.col_indices, 64, 64, c.kv_valid, std::nullopt,
      /*max_elements=*/1);
  CHECK(torch::allclose(whole, pieces, 1e-6, 1e-6));
  CHECK(torch::equal(torch::isinf(whole_lse), torch::isinf(pieces_lse)));
}

TEST_CASE("torch block-sparse attention rejects column indices outside the key blocks") {
  const Case c = random_case(3);
  torch::Tensor cols = c.col_indices.clone();
  cols[0] = 99;
  CHECK_THROWS_WITH(block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets, cols, 64, 64,
                                                 c.kv_valid),
                    Catch::Contains("col_indices value 99"));
}

TEST_CASE("torch block-sparse attention rejects row_offsets of the wrong shape") {
  const Case c = random_case(3);
  CHECK_THROWS_WITH(block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets.slice(1, 0, 2),
                                                 c.col_indices, 64, 64, c.kv_valid),
                    Catch::Contains("row_offsets must be [B, H, nqb + 1]"));
}

TEST_CASE("block-sparse attention on the CPU takes the torch path") {
  const Case c = random_case(13);
  const auto [a, la] = run_block_sparse_attention(c.q, c.k, c.v, c.row_offsets, c.col_indices,
                                                  64, 64, c.kv_valid);
  const auto [b, lb] = block_sparse_attention_torch(c.q, c.k, c.v, c.row_offsets,
                                                    c.col_indices, 64, 64, c.kv_valid);
  CHECK(torch::equal(a, b));
}

TEST_CASE("block-sparse attention on CUDA (kernels, bf16) matches the torch path") {
  if (!torch::cuda::is_available()) {
    WARN("skipped: no CUDA device");
    return;
  }
  Case c = random_case(17, 64, 300, 64);  // the kernels run head_dim 64 and 128
  const auto dev = torch::Device(torch::kCUDA);
  const auto bf = [&](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  const torch::Tensor q = bf(c.q), k = bf(c.k), v = bf(c.v);
  const auto [want, want_lse] = block_sparse_attention_torch(q, k, v, c.row_offsets,
                                                             c.col_indices, 64, 64, c.kv_valid);
  const auto [got, got_lse] = run_block_sparse_attention(
      q.to(dev), k.to(dev), v.to(dev), c.row_offsets.to(dev), c.col_indices.to(dev), 64, 64,
      c.kv_valid.to(dev));
  CHECK(torch::isnan(got).sum().item<int64_t>() == 0);
  CHECK(relative_l2(got.cpu(), want) < 1e-2);
  check_lse(got_lse.cpu(), want_lse, 1e-2);
}
