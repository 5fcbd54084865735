#include "kernels/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sparseplan::ref {
namespace {

double dot(const float* a, const float* b, int d) {
  double s = 0.0;
  for (int i = 0; i < d; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

bool key_exists(int64_t j, int block_k, const int32_t* kv_block_valid, int64_t kv_len) {
  if (j >= kv_len) return false;
  return kv_block_valid == nullptr || (j % block_k) < kv_block_valid[j / block_k];
}

// Softmax over the keys `keys[0..n)` of one query row; writes the output row and its LSE.
void attend_row(const HeadShape& s, const float* qi, const float* k, const float* v,
                const std::vector<int64_t>& keys, std::vector<double>& scores, float* out,
                float* lse) {
  const int d = s.head_dim;
  if (keys.empty()) {
    for (int c = 0; c < d; ++c) out[c] = 0.0f;
    *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  scores.resize(keys.size());
  double m = -std::numeric_limits<double>::infinity();
  for (size_t t = 0; t < keys.size(); ++t) {
    scores[t] = dot(qi, k + keys[t] * d, d) * double(s.scale);
    m = std::max(m, scores[t]);
  }
  double denom = 0.0;
  std::vector<double> acc(size_t(d), 0.0);
  for (size_t t = 0; t < keys.size(); ++t) {
    const double p = std::exp(scores[t] - m);
    denom += p;
    const float* vj = v + keys[t] * d;
    for (int c = 0; c < d; ++c) acc[size_t(c)] += p * double(vj[c]);
  }
  for (int c = 0; c < d; ++c) out[c] = float(acc[size_t(c)] / denom);
  *lse = float(m + std::log(denom));
}

}  // namespace

int64_t num_blocks(int64_t len, int block) { return (len + block - 1) / block; }

void dense_attention(const HeadShape& s, const float* q, const float* k, const float* v,
                     float* out, float* lse) {
  std::vector<int64_t> keys(size_t(s.kv_len));
  for (int64_t j = 0; j < s.kv_len; ++j) keys[size_t(j)] = j;
  std::vector<double> scores;
  for (int64_t i = 0; i < s.q_len; ++i)
    attend_row(s, q + i * s.head_dim, k, v, keys, scores, out + i * s.head_dim, lse + i);
}

void masked_dense_attention(const HeadShape& s, const float* q, const float* k, const float* v,
                            const uint8_t* mask, float* out, float* lse) {
  std::vector<int64_t> keys;
  std::vector<double> scores;
  for (int64_t i = 0; i < s.q_len; ++i) {
    keys.clear();
    for (int64_t j = 0; j < s.kv_len; ++j)
      if (mask[i * s.kv_len + j]) keys.push_back(j);
    attend_row(s, q + i * s.head_dim, k, v, keys, scores, out + i * s.head_dim, lse + i);
  }
}

void block_sparse_attention(const HeadShape& s, const BlockSparsity& b, const float* q,
                            const float* k, const float* v, float* out, float* lse) {
  std::vector<int64_t> keys;
  std::vector<double> scores;
  for (int64_t i = 0; i < s.q_len; ++i) {
    const int64_t qb = i / b.block_q;
    keys.clear();
    for (int32_t t = b.row_offsets[qb]; t < b.row_offsets[qb + 1]; ++t) {
      const int64_t kb = b.col_indices[t];
      for (int64_t j = kb * b.block_k; j < (kb + 1) * b.block_k; ++j)
        if (key_exists(j, b.block_k, b.kv_block_valid, s.kv_len)) keys.push_back(j);
    }
    attend_row(s, q + i * s.head_dim, k, v, keys, scores, out + i * s.head_dim, lse + i);
  }
}

void block_mass(const HeadShape& s, int block_q, int block_k, const int32_t* q_block_valid,
                const int32_t* kv_block_valid, const float* q, const float* k, const float* lse,
                float* mass) {
  const int64_t nqb = num_blocks(s.q_len, block_q);
  const int64_t nkb = num_blocks(s.kv_len, block_k);
  std::vector<double> row_mass(static_cast<size_t>(nkb));
  for (int64_t qb = 0; qb < nqb; ++qb) {
    std::fill(row_mass.begin(), row_mass.end(), 0.0);
    int64_t rows = 0;
    for (int64_t i = qb * block_q; i < std::min<int64_t>((qb + 1) * block_q, s.q_len); ++i) {
      if (q_block_valid != nullptr && (i % block_q) >= q_block_valid[qb]) continue;
      if (std::isinf(lse[i]) && lse[i] < 0) continue;
      ++rows;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        if (!key_exists(j, block_k, kv_block_valid, s.kv_len)) continue;
        const double score = dot(q + i * s.head_dim, k + j * s.head_dim, s.head_dim) * s.scale;
        row_mass[size_t(j / block_k)] += std::exp(score - double(lse[i]));
      }
    }
    for (int64_t kb = 0; kb < nkb; ++kb)
      mass[qb * nkb + kb] = rows == 0 ? 0.0f : float(row_mass[size_t(kb)] / double(rows));
  }
}

}  // namespace sparseplan::ref
