// Euler flow-matching sampler with timestep shift and classifier-free guidance, as Wan2.1 and
// wan-mini were trained: s = linspace(1, 0, steps+1), sigma = shift*s / (1 + (shift-1)*s),
// timestep = 1000*sigma, x <- x + (sigma_next - sigma) * v,
// v = v_uncond + guidance * (v_cond - v_uncond).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/wan_model.h"

namespace sparseplan {

struct SampleOptions {
  int frames = 16;
  int height = 64;
  int width = 64;
  int steps = 30;
  double shift = 3.0;
  double guidance = 5.0;  // 1 disables the unconditional branch
  uint64_t seed = 0;
  torch::Tensor context;           // [L, text_dim] or [1, L, text_dim] float32: the prompt
  torch::Tensor negative_context;  // same; undefined means all zeros (wan-mini's empty prompt)
  // The order to run the model's token stream in (ForwardContext::token_order): int64 [tokens]
  // of the video's grid, a permutation; undefined: model order.
  torch::Tensor token_order;
};

// Called after each step with the finished step index (0-based) and the step count.
using StepCallback = std::function<void(int step, int steps)>;

// The steps+1 shifted sigmas, from 1 down to 0.
std::vector<double> flow_sigmas(int steps, double shift);

// Standard normal noise [1, channels, frames, height, width] float32 drawn on the CPU from a
// generator seeded with `seed` (so a seed gives the same video on every device).
torch::Tensor seeded_noise(uint64_t seed, int channels, int frames, int height, int width);

// Runs the sampler from `noise` [1, C, F, H, W]; returns the final latent/video, same shape,
// float32 on the model's device. Checks the options and throws std::invalid_argument.
torch::Tensor sample_from_noise(const WanModel& model, const torch::Tensor& noise,
                                const SampleOptions& options, const AttentionFn& attention,
                                const StepCallback& on_step = {});

// seeded_noise + sample_from_noise; returns the video [out_dim, F, H, W] float32 on the CPU.
torch::Tensor sample_video(const WanModel& model, const SampleOptions& options,
                           const AttentionFn& attention, const StepCallback& on_step = {});

}  // namespace sparseplan
