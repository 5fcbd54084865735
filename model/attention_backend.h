// The one entry point of every self-attention call of the model runner. The runner builds q, k
// and v (after RoPE) and asks the backend for the output; the backend decides how: dense,
// dense while capturing block mass and LSE statistics, or a sparsity plan.
#pragma once

#include <functional>

#include <torch/types.h>

#include "plan/plan.h"

namespace sparseplan {

struct AttentionCall {
  int step = -1;        // denoising step index; -1 outside a sampling loop
  int layer = 0;
  int branch = 0;       // 0: conditional, 1: unconditional (classifier-free guidance)
  double timestep = 0;  // the model's timestep input (1000 * sigma)
  Grid grid;            // video token grid (frames, height, width) of this call
  TextLayout text;      // text tokens inside the self-attention sequence, if any
  // The order of the rows of q, k, v (and of the output): int64 [tokens], the model token of
  // each row, as the forward was asked to run its token stream (ForwardContext::token_order);
  // undefined: model token order.
  torch::Tensor token_order;
};

// q, k, v: [batch, tokens, heads, head_dim] in the call's token order; returns the same shape.
using AttentionFn = std::function<torch::Tensor(const AttentionCall& call, const torch::Tensor& q,
                                                const torch::Tensor& k, const torch::Tensor& v)>;

// Plain softmax attention (scale 1/sqrt(head_dim)), computed in float32.
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v);

}  // namespace sparseplan
