#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention_reference.h"
#include "plan/block_layout.h"

using namespace sparseplan;

namespace {

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

struct Inputs {
  ref::HeadShape shape;
  std::vector<float> q, k, v;
};

Inputs make_inputs(int64_t n, int d, uint32_t seed) {
  Inputs in;
  in.shape = {n, n, d, 1.0f / std::sqrt(float(d))};
  in.q = random_vector(size_t(n * d), seed);
  in.k = random_vector(size_t(n * d), seed + 1);
  in.v = random_vector(size_t(n * d), seed + 2);
  return in;
}

}  // namespace

TEST_CASE("dense attention rows are convex combinations of values with a consistent LSE") {
  const Inputs in = make_inputs(40, 16, 1);
  std::vector<float> out(in.q.size()), lse(40);
  ref::dense_attention(in.shape, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
  // Recompute row 7 by hand.
  double m = -1e30, sum = 0.0;
  std::vector<double> s(40);
  for (int j = 0; j < 40; ++j) {
    double d = 0.0;
    for (int c = 0; c < 16; ++c) d += double(in.q[7 * 16 + c]) * in.k[size_t(j * 16 + c)];
    s[size_t(j)] = d * in.shape.scale;
    m = std::max(m, s[size_t(j)]);
  }
  for (double x : s) sum += std::exp(x - m);
  CHECK(lse[7] == Approx(m + std::log(sum)).epsilon(1e-6));
  double o0 = 0.0;
  for (int j = 0; j < 40; ++j) o0 += std::exp(s[size_t(j)] - m) / sum * in.v[size_t(j * 16)];
  CHECK(out[7 * 16] == Approx(o0).margin(1e-5));
}

TEST_CASE("block-sparse attention with a full layout equals dense attention") {
  const Inputs in = make_inputs(100, 32, 2);  // last block partial: 100 = 3 x 32 + 4
  std::vector<uint8_t> full(4 * 4, 1);
  const BlockLayout layout = mask_to_layout(full, 4, 4);
  std::vector<float> dense(in.q.size()), dense_lse(100), sparse(in.q.size()), sparse_lse(100);
  ref::dense_attention(in.shape, in.q.data(), in.k.data(), in.v.data(), dense.data(),
                       dense_lse.data());
  ref::BlockSparsity bs{32, 32, layout.row_offsets.data(), layout.col_indices.data(), nullptr};
  ref::block_sparse_attention(in.shape, bs, in.q.data(), in.k.data(), in.v.data(), sparse.data(),
                              sparse_lse.data());
  CHECK(max_abs_diff(dense, sparse) < 1e-6);
  CHECK(max_abs_diff(dense_lse, sparse_lse) < 1e-5);
}

TEST_CASE("block-sparse attention equals masked dense attention for a random layout") {
  const Inputs in = make_inputs(128, 16, 3);
  std::mt19937 rng(5);
  std::vector<uint8_t> blocks(8 * 8);
  for (auto& b : blocks) b = uint8_t(rng() % 3 == 0);
  blocks[0] = 1;
  const BlockLayout layout = mask_to_layout(blocks, 8, 8);
  std::vector<uint8_t> mask(128 * 128);
  for (int i = 0; i < 128; ++i)
    for (int j = 0; j < 128; ++j) mask[size_t(i * 128 + j)] = blocks[size_t((i / 16) * 8 + j / 16)];
  std::vector<float> a(in.q.size()), alse(128), b(in.q.size()), blse(128);
  ref::masked_dense_attention(in.shape, in.q.data(), in.k.data(), in.v.data(), mask.data(),
                              a.data(), alse.data());
  ref::BlockSparsity bs{16, 16, layout.row_offsets.data(), layout.col_indices.data(), nullptr};
  ref::block_sparse_attention(in.shape, bs, in.q.data(), in.k.data(), in.v.data(), b.data(),
                              blse.data());
  CHECK(max_abs_diff(a, b) < 1e-6);
  for (int i = 0; i < 128; ++i) {
    if (std::isinf(alse[size_t(i)])) CHECK(std::isinf(blse[size_t(i)]));
    else CHECK(blse[size_t(i)] == Approx(alse[size_t(i)]).epsilon(1e-6));
  }
}

TEST_CASE("query blocks with no key block give zeros and LSE minus infinity") {
  const Inputs in = make_inputs(64, 8, 4);
  std::vector<uint8_t> blocks = {1, 1, 0, 0};  // query block 1 attends nothing
  const BlockLayout layout = mask_to_layout(blocks, 2, 2);
  std::vector<float> out(in.q.size(), std::nanf("")), lse(64, std::nanf(""));
  ref::BlockSparsity bs{32, 32, layout.row_offsets.data(), layout.col_indices.data(), nullptr};
  ref::block_sparse_attention(in.shape, bs, in.q.data(), in.k.data(), in.v.data(), out.data(),
                              lse.data());
  for (int i = 32; i < 64; ++i) {
    CHECK(lse[size_t(i)] == -std::numeric_limits<float>::infinity());
    for (int c = 0; c < 8; ++c) CHECK(out[size_t(i * 8 + c)] == 0.0f);
  }
  CHECK(std::isfinite(lse[0]));
}

TEST_CASE("padded keys named by kv_block_valid are never attended") {
  Inputs in = make_inputs(64, 8, 6);
  const std::vector<int32_t> valid = {32, 20};  // keys 52..63 are padding
  std::vector<uint8_t> full = {1, 1, 1, 1};
  const BlockLayout layout = mask_to_layout(full, 2, 2);
  std::vector<float> a(in.q.size()), alse(64), b(in.q.size()), blse(64);
  ref::BlockSparsity bs{32, 32, layout.row_offsets.data(), layout.col_indices.data(), valid.data()};
  ref::block_sparse_attention(in.shape, bs, in.q.data(), in.k.data(), in.v.data(), a.data(),
                              alse.data());
  for (int j = 52; j < 64; ++j)
    for (int c = 0; c < 8; ++c) in.k[size_t(j * 8 + c)] = 100.0f;  // would dominate if attended
  ref::block_sparse_attention(in.shape, bs, in.q.data(), in.k.data(), in.v.data(), b.data(),
                              blse.data());
  CHECK(max_abs_diff(a, b) == 0.0);
}

TEST_CASE("block mass rows sum to one and match the masked attention probabilities") {
  const Inputs in = make_inputs(96, 16, 7);
  std::vector<float> out(in.q.size()), lse(96);
  ref::dense_attention(in.shape, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
  std::vector<float> mass(3 * 3);
  ref::block_mass(in.shape, 32, 32, nullptr, nullptr, in.q.data(), in.k.data(), lse.data(),
                  mass.data());
  for (int qb = 0; qb < 3; ++qb) {
    double row = 0.0;
    for (int kb = 0; kb < 3; ++kb) row += mass[size_t(qb * 3 + kb)];
    CHECK(row == Approx(1.0).margin(1e-5));
  }
  // Mass of (query block 1, key block 2) by brute force.
  double expected = 0.0;
  for (int i = 32; i < 64; ++i)
    for (int j = 64; j < 96; ++j) {
      double d = 0.0;
      for (int c = 0; c < 16; ++c) d += double(in.q[size_t(i * 16 + c)]) * in.k[size_t(j * 16 + c)];
      expected += std::exp(d * in.shape.scale - lse[size_t(i)]) / 32.0;
    }
  CHECK(mass[1 * 3 + 2] == Approx(expected).epsilon(1e-5));
}
