// Dense self-attention for the runner. On CUDA, when the kernels are built and the head_dim is
// one they run (64, 128), the dense kernel of the torch op (sparseplan::dense_attention) runs in
// bfloat16 with its LSE: the runner's q, k, v are bf16-rounded already, so the cast loses
// nothing. Elsewhere, or when the float32 reference is asked for (known-answer tests,
// --attention reference), model/attention_backend.h's dense_attention runs.
#pragma once

#include <string>
#include <utility>

#include <torch/types.h>

#include "model/attention_backend.h"

namespace sparseplan {

class AttentionProfile;

enum class AttentionImpl {
  Kernels,    // the CUDA kernels where they run, the float32 LibTorch path elsewhere
  Reference,  // the float32 LibTorch path everywhere
};

// "kernels" or "reference"; throws std::invalid_argument naming `option` otherwise.
AttentionImpl parse_attention_impl(const std::string& text, const std::string& option);
const char* attention_impl_name(AttentionImpl impl);

// Whether the CUDA kernels are built into this binary and registered with the dispatcher.
bool cuda_kernels_available();

// Whether run_dense_attention takes the dense kernel for these inputs.
bool dense_kernel_runs(const torch::Tensor& q, AttentionImpl impl);

// q, k, v [B, N, H, D]; returns float32 [B, N, H, D] on q's device.
torch::Tensor run_dense_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, AttentionImpl impl);

// The dense kernel itself, for callers that need its LSE: (out float32 [B, N, H, D], lse float32
// [B, H, N], natural log), both on q's device. Throws std::invalid_argument unless
// dense_kernel_runs(q, AttentionImpl::Kernels).
std::pair<torch::Tensor, torch::Tensor> dense_attention_kernel(const torch::Tensor& q,
                                                               const torch::Tensor& k,
                                                               const torch::Tensor& v);

// The AttentionFn of a run without a plan: every call dense, booked under the profile's dense
// calls when a profile is given (it must outlive the function).
AttentionFn dense_backend(AttentionImpl impl, AttentionProfile* profile = nullptr);

}  // namespace sparseplan
