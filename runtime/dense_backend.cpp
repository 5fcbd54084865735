#include "runtime/dense_backend.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <stdexcept>

#include <torch/types.h>

#include "runtime/attention_profile.h"
#include "runtime/torch_ops.h"

namespace sparseplan {

AttentionImpl parse_attention_impl(const std::string& text, const std::string& option) {
  if (text == "kernels") return AttentionImpl::Kernels;
  if (text == "reference") return AttentionImpl::Reference;
  throw std::invalid_argument(option + " must be kernels or reference, got '" + text + "'");
}

const char* attention_impl_name(AttentionImpl impl) {
  return impl == AttentionImpl::Kernels ? "kernels" : "reference";
}

bool cuda_kernels_available() {
  static const bool registered = [] {
    const auto op = c10::Dispatcher::singleton().findSchema({"sparseplan::dense_attention", ""});
    return op.has_value() && op->hasKernelForDispatchKey(c10::DispatchKey::CUDA);
  }();
  return registered;
}

bool dense_kernel_runs(const torch::Tensor& q, AttentionImpl impl) {
  return impl == AttentionImpl::Kernels && q.is_cuda() && (q.size(-1) == 64 || q.size(-1) == 128) &&
         cuda_kernels_available();
}

std::pair<torch::Tensor, torch::Tensor> dense_attention_kernel(const torch::Tensor& q,
                                                               const torch::Tensor& k,
                                                               const torch::Tensor& v) {
  if (!dense_kernel_runs(q, AttentionImpl::Kernels))
    throw std::invalid_argument("dense_attention_kernel: needs CUDA tensors with head_dim 64 or "
                                "128 and the CUDA kernels built");
  const auto dtype = q.scalar_type() == torch::kHalf ? torch::kHalf : torch::kBFloat16;
  auto [out, lse] = ops::dense_attention(q.to(dtype).contiguous(), k.to(dtype).contiguous(),
                                         v.to(dtype).contiguous(), c10::nullopt);
  return {out.to(torch::kFloat32), lse};
}

torch::Tensor run_dense_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, AttentionImpl impl) {
  if (dense_kernel_runs(q, impl)) return dense_attention_kernel(q, k, v).first;
  return dense_attention(q, k, v);
}

AttentionFn dense_backend(AttentionImpl impl, AttentionProfile* profile) {
  return [impl, profile](const AttentionCall&, const torch::Tensor& q, const torch::Tensor& k,
                         const torch::Tensor& v) {
    if (!profile) return run_dense_attention(q, k, v, impl);
    return profile->time(AttentionProfile::Part::Dense, q.device(),
                         [&] { return run_dense_attention(q, k, v, impl); });
  };
}

}  // namespace sparseplan
