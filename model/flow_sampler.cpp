#include "model/flow_sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <cmath>
#include <stdexcept>

namespace sparseplan {
namespace {

// [L, D] or [1, L, D] -> [1, L, D] float32 on `device`; checks D and L.
torch::Tensor as_batch(const torch::Tensor& context, const WanConfig& config,
                       torch::Device device, const char* what) {
  torch::Tensor c = context;
  if (c.dim() == 2) c = c.unsqueeze(0);
  if (c.dim() != 3 || c.size(0) != 1 || c.size(2) != config.text_dim ||
      c.size(1) > config.text_len || c.size(1) < 1)
    throw std::invalid_argument(std::string(what) + " must be [L, " +
                                std::to_string(config.text_dim) + "] with 1 <= L <= " +
                                std::to_string(config.text_len));
  return c.to(device, torch::kFloat32);
}

}  // namespace

std::vector<double> flow_sigmas(int steps, double shift) {
  if (steps < 1) throw std::invalid_argument("steps must be >= 1");
  if (!(shift > 0) || !std::isfinite(shift)) throw std::invalid_argument("shift must be > 0");
  std::vector<double> sigmas(size_t(steps) + 1);
  for (int i = 0; i <= steps; ++i) {
    const double s = 1.0 - double(i) / steps;
    sigmas[size_t(i)] = shift * s / (1.0 + (shift - 1.0) * s);
  }
  return sigmas;
}

torch::Tensor seeded_noise(uint64_t seed, int channels, int frames, int height, int width) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randn({1, channels, frames, height, width}, gen,
                      torch::TensorOptions().dtype(torch::kFloat32));
}

torch::Tensor sample_from_noise(const WanModel& model, const torch::Tensor& noise,
                                const SampleOptions& options, const AttentionFn& attention,
                                const StepCallback& on_step) {
  const WanConfig& c = model.config;
  if (noise.dim() != 5 || noise.size(0) != 1 || noise.size(1) != c.in_dim)
    throw std::invalid_argument("noise must be [1, " + std::to_string(c.in_dim) +
                                ", F, H, W]");
  if (c.in_dim != c.out_dim)
    throw std::invalid_argument("sampling needs in_dim == out_dim");
  if (!(options.guidance >= 0) || !std::isfinite(options.guidance))
    throw std::invalid_argument("guidance must be a finite number >= 0");
  if (!options.context.defined()) throw std::invalid_argument("no prompt context given");
  const Grid grid = model.token_grid(int(noise.size(2)), int(noise.size(3)), int(noise.size(4)));
  const std::vector<double> sigmas = flow_sigmas(options.steps, options.shift);

  torch::NoGradGuard no_grad;
  torch::Tensor order;
  if (options.token_order.defined()) {
    const torch::Tensor& o = options.token_order;
    const int64_t n = grid.tokens();
    if (o.dim() != 1 || o.size(0) != n || o.scalar_type() != torch::kLong)
      throw std::invalid_argument("token_order must be int64 [" + std::to_string(n) +
                                  "], the grid's tokens");
    if (!torch::equal(std::get<0>(o.sort()).cpu(), torch::arange(n, torch::kLong)))
      throw std::invalid_argument("token_order must hold every token of the grid once");
    order = o.to(model.device);
  }
  const torch::Tensor cond = as_batch(options.context, c, model.device, "context");
  const bool use_uncond = options.guidance != 1.0;
  torch::Tensor uncond;
  if (use_uncond)
    uncond = options.negative_context.defined()
                 ? as_batch(options.negative_context, c, model.device, "negative context")
                 : torch::zeros_like(cond);

  torch::Tensor x = noise.to(model.device, torch::kFloat32);
  for (int i = 0; i < options.steps; ++i) {
    const double timestep = 1000.0 * sigmas[size_t(i)];
    const torch::Tensor t = torch::full({1}, timestep,
                                        torch::TensorOptions().dtype(torch::kFloat32).device(model.device));
    torch::Tensor v = model.forward(x, t, cond, attention, ForwardContext{i, 0, order});
    if (use_uncond) {
      const torch::Tensor vu = model.forward(x, t, uncond, attention, ForwardContext{i, 1, order});
      v = vu + options.guidance * (v - vu);
    }
    x = x + (sigmas[size_t(i) + 1] - sigmas[size_t(i)]) * v;
    if (on_step) on_step(i, options.steps);
  }
  return x;
}

torch::Tensor sample_video(const WanModel& model, const SampleOptions& options,
                           const AttentionFn& attention, const StepCallback& on_step) {
  const torch::Tensor noise =
      seeded_noise(options.seed, model.config.in_dim, options.frames, options.height, options.width);
  return sample_from_noise(model, noise, options, attention, on_step)[0].to(torch::kCPU);
}

}  // namespace sparseplan
