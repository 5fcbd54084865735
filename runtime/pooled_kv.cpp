#include "runtime/pooled_kv.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <torch/types.h>

#include "runtime/tensor_text.h"

namespace sparseplan {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("compensate_dropped_blocks: " + message);
}

}  // namespace

at::Tensor kept_blocks(const at::Tensor& row_offsets, const at::Tensor& col_indices,
                       int64_t num_key_blocks) {
  const at::Tensor ro = row_offsets.to(torch::kCPU, torch::kInt).contiguous();
  const at::Tensor ci = col_indices.to(torch::kCPU, torch::kInt).contiguous();
  if (ro.dim() != 3) throw std::invalid_argument("kept_blocks: row_offsets must be [B, H, nqb + 1]");
  const int64_t B = ro.size(0), H = ro.size(1), nqb = ro.size(2) - 1;
  at::Tensor kept = torch::zeros({B, H, nqb, num_key_blocks}, torch::kBool);
  const int32_t* r = ro.data_ptr<int32_t>();
  const int32_t* c = ci.data_ptr<int32_t>();
  bool* m = kept.data_ptr<bool>();
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < nqb; ++i) {
      const int32_t* row = r + bh * (nqb + 1) + i;
      for (int32_t e = row[0]; e < row[1]; ++e) {
        if (c[e] < 0 || c[e] >= num_key_blocks)
          throw std::invalid_argument("kept_blocks: column " + std::to_string(c[e]) +
                                      " outside [0, " + std::to_string(num_key_blocks) + ")");
        m[(bh * nqb + i) * num_key_blocks + c[e]] = true;
      }
    }
  return kept;
}

at::Tensor compensate_dropped_blocks(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& out, const at::Tensor& lse,
                                     const at::Tensor& kept, int64_t block_size,
                                     const std::optional<at::Tensor>& kv_valid,
                                     std::optional<double> scale) {
  require(q.dim() == 4, "q must be [B, Np, H, D], got " + shape_text(q));
  const int64_t B = q.size(0), Np = q.size(1), H = q.size(2), D = q.size(3);
  require(block_size > 0 && Np % block_size == 0,
          "q's " + std::to_string(Np) + " rows are not whole blocks of " +
              std::to_string(block_size));
  const int64_t nb = Np / block_size;
  require(k.sizes() == q.sizes() && v.sizes() == q.sizes() && out.sizes() == q.sizes(),
          "k " + shape_text(k) + ", v " + shape_text(v) + " and out " + shape_text(out) +
              " must equal q's " + shape_text(q));
  require(lse.dim() == 3 && lse.size(0) == B && lse.size(1) == H && lse.size(2) == Np,
          "lse must be [B, H, Np] = [" + std::to_string(B) + ", " + std::to_string(H) + ", " +
              std::to_string(Np) + "], got " + shape_text(lse));
  require(kept.dim() == 4 && kept.size(0) == B && kept.size(1) == H && kept.size(2) == nb &&
              kept.size(3) == nb,
          "kept must be [B, H, nqb, nkb] = [" + std::to_string(B) + ", " + std::to_string(H) +
              ", " + std::to_string(nb) + ", " + std::to_string(nb) + "], got " + shape_text(kept));
  const auto device = q.device();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
  at::Tensor valid = kv_valid ? kv_valid->to(f32) : torch::full({nb}, double(block_size), f32);
  require(valid.dim() == 1 && valid.size(0) == nb,
          "kv_valid must hold one count per key block (" + std::to_string(nb) + "), got " +
              shape_text(valid));
  const double sc = scale.value_or(1.0 / std::sqrt(double(D)));
  const double inf = std::numeric_limits<double>::infinity();

  // Padding rows are zero, so block sums over all rows are sums over the valid keys.
  const at::Tensor denom = valid.clamp_min(1.0).view({1, nb, 1, 1});
  const at::Tensor kbar = k.to(f32).view({B, nb, block_size, H, D}).sum(2) / denom;
  const at::Tensor vbar = v.to(f32).view({B, nb, block_size, H, D}).sum(2) / denom;
  // logit bias log(n_j); an empty block never enters.
  const at::Tensor bias = torch::where(valid > 0, valid.clamp_min(1.0).log(),
                                       torch::full_like(valid, -inf));
  const at::Tensor kept_here = kept.to(device);  // [B, H, nqb, nkb]

  // The two products run in bf16 on CUDA, as the kernels do (float32 matmuls there would cost
  // the coarse part about ten times its FLOP share); softmax and merge stay in float32.
  const auto mm = device.is_cuda() ? torch::kBFloat16 : torch::kFloat;
  const at::Tensor qh = q.permute({0, 2, 1, 3}).to(mm);                  // [B, H, Np, D]
  const at::Tensor kbar_h = kbar.permute({0, 2, 3, 1}).to(mm);           // [B, H, D, nkb]
  const at::Tensor vbar_h = vbar.permute({0, 2, 1, 3}).to(mm);           // [B, H, nkb, D]
  const at::Tensor out_h = out.permute({0, 2, 1, 3});                    // [B, H, Np, D]
  at::Tensor merged = torch::empty({B, H, Np, D}, f32);
  // Heads in groups whose [B, heads, Np, nkb] logits stay within about 64 Mi elements.
  const int64_t per_head = B * Np * nb;
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>(H, (int64_t(1) << 26) / per_head));
  for (int64_t h0 = 0; h0 < H; h0 += group) {
    const int64_t g = std::min(group, H - h0);
    at::Tensor logits =
        torch::matmul(qh.narrow(1, h0, g), kbar_h.narrow(1, h0, g)).to(f32) * sc + bias;
    logits = logits.view({B, g, nb, block_size, nb})
                 .masked_fill(kept_here.narrow(1, h0, g).unsqueeze(3), -inf)  // kept: not pooled
                 .view({B, g, Np, nb});
    const at::Tensor lse_c = torch::logsumexp(logits, -1);               // [B, g, Np]
    const at::Tensor p = torch::exp(
        logits - torch::where(torch::isinf(lse_c), torch::zeros_like(lse_c), lse_c).unsqueeze(-1));
    const at::Tensor out_c = torch::matmul(p.to(mm), vbar_h.narrow(1, h0, g)).to(f32);
    const at::Tensor lse_s = lse.narrow(1, h0, g).to(f32);
    const at::Tensor m = torch::maximum(lse_s, lse_c);
    const at::Tensor m_safe = torch::where(torch::isinf(m), torch::zeros_like(m), m);
    const at::Tensor ws = torch::exp(lse_s - m_safe), wc = torch::exp(lse_c - m_safe);
    const at::Tensor total = (ws + wc).clamp_min(std::numeric_limits<float>::min());
    merged.narrow(1, h0, g).copy_((out_h.narrow(1, h0, g).to(f32) * ws.unsqueeze(-1) +
                                   out_c * wc.unsqueeze(-1)) /
                                  total.unsqueeze(-1));
  }
  return merged.permute({0, 2, 1, 3}).contiguous();
}

}  // namespace sparseplan
