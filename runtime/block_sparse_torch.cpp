#include "runtime/block_sparse_torch.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/dense_backend.h"
#include "runtime/torch_ops.h"
#include "runtime/tensor_text.h"

namespace sparseplan {
namespace {

using at::Tensor;

void fail(const std::string& what) {
  throw std::invalid_argument("block_sparse_attention_torch: " + what);
}

void check_int32(const char* name, const Tensor& t) {
  if (!t.defined() || t.scalar_type() != at::kInt) fail(std::string(name) + " must be int32");
}

int64_t blocks(int64_t len, int64_t block) { return (len + block - 1) / block; }

// [B, N, H, D] -> [B * H * nb, block, D] float32, rows past N zero.
Tensor to_blocks(const Tensor& x, int64_t block, int64_t nb) {
  const int64_t B = x.size(0), N = x.size(1), H = x.size(2), D = x.size(3);
  Tensor padded = at::zeros({B, H, nb * block, D}, x.options().dtype(at::kFloat));
  padded.narrow(2, 0, N).copy_(x.permute({0, 2, 1, 3}));
  return padded.view({B * H * nb, block, D});
}

Tensor long_tensor(const std::vector<int64_t>& v, const at::Device& device) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).to(device);
}

}  // namespace

std::tuple<Tensor, Tensor> block_sparse_attention_torch(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& row_offsets,
    const Tensor& col_indices, int64_t block_q, int64_t block_k,
    const std::optional<Tensor>& kv_block_valid, std::optional<double> scale,
    int64_t max_elements) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
    fail("q, k, v must be [B, N, H, D]; got q " + shape_text(q) + ", k " + shape_text(k) +
         ", v " + shape_text(v));
  if (k.sizes() != v.sizes() || k.size(0) != q.size(0) || k.size(3) != q.size(3) ||
      k.size(2) <= 0 || q.size(2) % k.size(2) != 0)
    fail("k and v must share one shape with q's batch and head_dim and heads dividing q's; got q " +
         shape_text(q) + ", k " + shape_text(k) + ", v " + shape_text(v));
  if (!at::isFloatingType(q.scalar_type()) || k.scalar_type() != q.scalar_type() ||
      v.scalar_type() != q.scalar_type())
    fail("q, k, v must be floating point of one dtype");
  if (k.device() != q.device() || v.device() != q.device())
    fail("q, k, v must be on one device");
  if (block_q <= 0 || block_k <= 0)
    fail("block sizes must be positive, got " + std::to_string(block_q) + " and " +
         std::to_string(block_k));
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), D = q.size(3);
  const int64_t Nk = k.size(1), Hk = k.size(2), group = H / Hk;
  const int64_t nqb = blocks(N, block_q), nkb = blocks(Nk, block_k);
  check_int32("row_offsets", row_offsets);
  check_int32("col_indices", col_indices);
  if (row_offsets.dim() != 3 || row_offsets.size(0) != B || row_offsets.size(1) != H ||
      row_offsets.size(2) != nqb + 1)
    fail("row_offsets must be [B, H, nqb + 1] = [" + std::to_string(B) + ", " +
         std::to_string(H) + ", " + std::to_string(nqb + 1) + "], got " +
         shape_text(row_offsets));
  if (col_indices.dim() != 1) fail("col_indices must be 1-D, got " + shape_text(col_indices));
  const double s = scale.value_or(1.0 / std::sqrt(double(D)));
  if (!(s > 0.0) || !std::isfinite(s)) fail("scale must be positive and finite");

  const Tensor ro = row_offsets.to(at::kCPU).contiguous();
  const Tensor ci = col_indices.to(at::kCPU).contiguous();
  const int32_t* ro_p = ro.data_ptr<int32_t>();
  const int32_t* ci_p = ci.data_ptr<int32_t>();

  // Per key position 0 (exists) or -inf (padding past kv_block_valid or kv_len).
  std::vector<float> bias(size_t(nkb * block_k), -std::numeric_limits<float>::infinity());
  Tensor valid_cpu;
  if (kv_block_valid.has_value()) {
    check_int32("kv_block_valid", *kv_block_valid);
    if (kv_block_valid->dim() != 1 || kv_block_valid->size(0) != nkb)
      fail("kv_block_valid must be [" + std::to_string(nkb) + "], got " +
           shape_text(*kv_block_valid));
    valid_cpu = kv_block_valid->to(at::kCPU).contiguous();
  }
  for (int64_t j = 0; j < nkb; ++j) {
    int64_t n = std::min(block_k, Nk - j * block_k);
    if (valid_cpu.defined()) n = std::min<int64_t>(n, valid_cpu.data_ptr<int32_t>()[j]);
    for (int64_t t = 0; t < n; ++t) bias[size_t(j * block_k + t)] = 0.0f;
  }

  // Query blocks grouped by their number of key blocks, so each group is one batched matmul.
  std::map<int64_t, std::vector<int64_t>> rows_by_count;
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int32_t* r = ro_p + bh * (nqb + 1);
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const int64_t c = int64_t(r[qb + 1]) - r[qb];
      if (r[qb] < 0 || c < 0 || r[qb + 1] > ci.numel())
        fail("row_offsets of head (" + std::to_string(bh / H) + ", " + std::to_string(bh % H) +
             ") point outside col_indices");
      for (int64_t t = r[qb]; t < r[qb + 1]; ++t)
        if (ci_p[t] < 0 || ci_p[t] >= nkb)
          fail("col_indices value " + std::to_string(ci_p[t]) + " is outside [0, " +
               std::to_string(nkb) + ")");
      if (c > 0) rows_by_count[c].push_back(bh * nqb + qb);
    }
  }

  const at::Device device = q.device();
  const Tensor qb_all = to_blocks(q, block_q, nqb);
  const Tensor kb_all = to_blocks(k, block_k, nkb);
  const Tensor vb_all = to_blocks(v, block_k, nkb);
  const Tensor bias_t =
      at::tensor(at::ArrayRef<float>(bias), at::kFloat).to(device).view({nkb, block_k});
  Tensor out = at::zeros({B * H * nqb, block_q, D}, q.options().dtype(at::kFloat));
  Tensor lse = at::full({B * H * nqb, block_q}, -std::numeric_limits<float>::infinity(),
                        q.options().dtype(at::kFloat));
  if (max_elements <= 0) max_elements = int64_t(16) << 20;

  std::vector<int64_t> rows, keys, cols;
  for (const auto& [count, all_rows] : rows_by_count) {
    const int64_t chunk = std::max<int64_t>(1, max_elements / (count * block_k * D));
    for (size_t r0 = 0; r0 < all_rows.size(); r0 += size_t(chunk)) {
      const size_t r1 = std::min(all_rows.size(), r0 + size_t(chunk));
      const int64_t R = int64_t(r1 - r0);
      rows.assign(all_rows.begin() + r0, all_rows.begin() + r1);
      keys.clear();
      cols.clear();
      for (int64_t row : rows) {
        const int64_t bh = row / nqb, b = bh / H, h = bh % H, qb = row % nqb;
        const int64_t kv_base = (b * Hk + h / group) * nkb;
        for (int32_t t = ro_p[bh * (nqb + 1) + qb]; t < ro_p[bh * (nqb + 1) + qb + 1]; ++t) {
          keys.push_back(kv_base + ci_p[t]);
          cols.push_back(ci_p[t]);
        }
      }
      const Tensor row_t = long_tensor(rows, device);
      const Tensor key_t = long_tensor(keys, device);
      const Tensor qg = qb_all.index_select(0, row_t);                                // [R,bq,D]
      const Tensor kg = kb_all.index_select(0, key_t).view({R, count * block_k, D});  // [R,ck,D]
      const Tensor vg = vb_all.index_select(0, key_t).view({R, count * block_k, D});
      const Tensor bg = bias_t.index_select(0, long_tensor(cols, device)).view({R, 1, count * block_k});
      Tensor scores = at::baddbmm(bg, qg, kg.transpose(1, 2), 1.0, s);  // [R,bq,ck]
      const Tensor row_lse = at::logsumexp(scores, 2, /*keepdim=*/true);
      // Rows without any existing key: subtract 0 so exp gives zeros rather than NaN.
      const Tensor shift = row_lse.masked_fill(at::isinf(row_lse), 0.0);
      scores.sub_(shift).exp_();
      out.index_copy_(0, row_t, at::bmm(scores, vg));
      lse.index_copy_(0, row_t, row_lse.squeeze(2));
    }
  }
  Tensor o = out.view({B, H, nqb * block_q, D}).narrow(2, 0, N).permute({0, 2, 1, 3});
  return {o.to(q.scalar_type()).contiguous(),
          lse.view({B, H, nqb * block_q}).narrow(2, 0, N).contiguous()};
}

bool block_sparse_kernel_runs(const Tensor& q, int64_t block_q, int64_t block_k) {
  const bool kernel_blocks = (block_q == 64 || block_q == 128) && (block_k == 64 || block_k == 128);
  const bool kernel_head_dim = q.size(-1) == 64 || q.size(-1) == 128;
  return q.is_cuda() && kernel_blocks && kernel_head_dim && cuda_kernels_available();
}

std::tuple<Tensor, Tensor> run_block_sparse_attention(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& row_offsets,
    const Tensor& col_indices, int64_t block_q, int64_t block_k,
    const std::optional<Tensor>& kv_block_valid, std::optional<double> scale,
    const std::optional<Tensor>& q_pair_order) {
  if (block_sparse_kernel_runs(q, block_q, block_k)) {
    // The kernels run bfloat16/float16; the runner's attention inputs are bf16-rounded already.
    const auto dtype = q.scalar_type() == at::kHalf ? at::kHalf : at::kBFloat16;
    c10::optional<Tensor> valid;
    if (kv_block_valid.has_value()) valid = *kv_block_valid;
    c10::optional<double> sc;
    if (scale.has_value()) sc = *scale;
    c10::optional<Tensor> pairs;
    if (q_pair_order.has_value()) pairs = *q_pair_order;
    auto [out, lse] = ops::block_sparse_attention(
        q.to(dtype).contiguous(), k.to(dtype).contiguous(), v.to(dtype).contiguous(),
        row_offsets.contiguous(), col_indices.contiguous(), block_q, block_k, valid, sc, pairs);
    return {out.to(q.scalar_type()), lse};
  }
  return block_sparse_attention_torch(q, k, v, row_offsets, col_indices, block_q, block_k,
                                      kv_block_valid, scale);
}

}  // namespace sparseplan
