#include "model/attention_backend.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <torch/utils.h>

namespace sparseplan {

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || k.sizes() != v.sizes() ||
      q.size(0) != k.size(0) || q.size(2) != k.size(2) || q.size(3) != k.size(3))
    throw std::invalid_argument("dense_attention: q, k, v must be [B, N, H, D] with matching "
                                "batch, heads and head_dim (k and v of one shape)");
  torch::NoGradGuard no_grad;
  const int64_t B = q.size(0), Nq = q.size(1), H = q.size(2), D = q.size(3), Nk = k.size(1);
  const double scale = 1.0 / std::sqrt(double(D));
  torch::Tensor qh = q.to(torch::kFloat32).permute({0, 2, 1, 3});  // [B, H, Nq, D]
  torch::Tensor kt = k.to(torch::kFloat32).permute({0, 2, 3, 1});  // [B, H, D, Nk]
  torch::Tensor vh = v.to(torch::kFloat32).permute({0, 2, 1, 3});  // [B, H, Nk, D]
  torch::Tensor out = torch::empty({B, H, Nq, D}, qh.options());
  // Query rows are chunked so the score matrix stays near 64M floats at any sequence length.
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 26) / std::max<int64_t>(1, B * H * Nk));
  for (int64_t r0 = 0; r0 < Nq; r0 += rows) {
    const int64_t r1 = std::min(Nq, r0 + rows);
    torch::Tensor s = torch::matmul(qh.slice(2, r0, r1), kt).mul_(scale);
    out.slice(2, r0, r1).copy_(torch::matmul(torch::softmax(s, -1), vh));
  }
  return out.permute({0, 2, 1, 3}).contiguous();
}

}  // namespace sparseplan
