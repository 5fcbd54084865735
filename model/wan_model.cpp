#include "model/wan_model.h"

#include <cmath>
#include <filesystem>
#include <set>
#include <stdexcept>

#include <torch/cuda.h>
#include <torch/utils.h>

#include "io/safetensors.h"

namespace sparseplan {
namespace {

constexpr double kRopeTheta = 10000.0;

// Loads tensors by name, checking shapes, and remembers which names were used so that unknown
// tensors in the checkpoint can be reported (the official loader is strict too).
class WeightLoader {
 public:
  WeightLoader(const SafetensorsCheckpoint& ckpt, torch::Device device, torch::ScalarType dtype)
      : ckpt_(ckpt), device_(device), dtype_(dtype) {}

  // Linear and conv weights: the model's dtype.
  torch::Tensor weight(const std::string& name, std::vector<int64_t> shape) {
    return load(name, shape).to(device_, dtype_);
  }
  // Biases, norms and modulation: float32, as the official model computes them.
  torch::Tensor exact(const std::string& name, std::vector<int64_t> shape) {
    return load(name, shape).to(device_, torch::kFloat32);
  }

  void check_all_used() const {
    std::vector<std::string> unknown;
    for (const std::string& n : ckpt_.names())
      if (!used_.count(n)) unknown.push_back(n);
    if (unknown.empty()) return;
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
    if (unknown.size() > 5) list += ", ...";
    throw std::runtime_error(ckpt_.source() + ": " + std::to_string(unknown.size()) +
                             " tensors are not part of a Wan2.1 t2v model with this config: " +
                             list);
  }

 private:
  torch::Tensor load(const std::string& name, const std::vector<int64_t>& shape) {
    if (!ckpt_.contains(name))
      throw std::runtime_error(ckpt_.source() + ": missing tensor '" + name + "'");
    torch::Tensor t = ckpt_.load_float32(name);
    if (t.sizes().vec() != shape) {
      std::string want, got;
      for (int64_t s : shape) want += (want.empty() ? "" : ", ") + std::to_string(s);
      for (int64_t s : t.sizes()) got += (got.empty() ? "" : ", ") + std::to_string(s);
      throw std::runtime_error(ckpt_.source() + ": tensor '" + name + "' has shape [" + got +
                               "], config.json implies [" + want + "]");
    }
    used_.insert(name);
    return t;
  }

  const SafetensorsCheckpoint& ckpt_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::set<std::string> used_;
};

// The checkpoint's transformer blocks against config.json's num_layers, before any weight is
// read: a config that does not belong to the checkpoint fails at once, not after loading (and
// allocating) the layers the two have in common.
void check_layer_count(const SafetensorsCheckpoint& ckpt, int num_layers,
                       const std::string& config_path) {
  std::set<int64_t> blocks;
  for (const std::string& name : ckpt.names()) {
    if (name.rfind("blocks.", 0) != 0) continue;
    const size_t dot = name.find('.', 7);
    const std::string index = name.substr(7, dot == std::string::npos ? dot : dot - 7);
    if (index.empty() || index.size() > 9 ||
        index.find_first_not_of("0123456789") != std::string::npos)
      continue;  // not a layer; check_all_used reports it
    blocks.insert(std::stoll(index));
  }
  const int64_t held = blocks.empty() ? 0 : *blocks.rbegin() + 1;
  if (held != num_layers)
    throw std::runtime_error(config_path + ": num_layers is " + std::to_string(num_layers) +
                             ", but the checkpoint " + ckpt.source() + " holds " +
                             std::to_string(held) + " transformer blocks");
}

// Throws naming the first layer (or the output head, the last entry) whose output holds a NaN
// or an infinity, so that a capture or a video is never written from such a run.
void check_finite_stream(const std::vector<torch::Tensor>& sums, const ForwardContext& where) {
  const torch::Tensor finite = torch::isfinite(torch::stack(sums)).cpu();
  if (finite.all().item<bool>()) return;
  const int64_t first = torch::logical_not(finite).nonzero()[0][0].item<int64_t>();
  const int64_t layers = int64_t(sums.size()) - 1;
  const std::string part = first < layers ? "layer " + std::to_string(first) : "the output head";
  const std::string when = where.step >= 0 ? "step " + std::to_string(where.step) +
                                                 (where.branch == 0 ? " (conditional)"
                                                                    : " (unconditional)")
                                           : "a forward outside the sampling loop";
  throw std::runtime_error("the model produced NaN or infinite values in " + part + " at " +
                           when + ": the weights or the inputs overflow or are not finite");
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::linear(x.to(w.scalar_type()), w, b.to(w.scalar_type())).to(torch::kFloat32);
}

torch::Tensor layer_norm(const torch::Tensor& x, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, {}, {}, eps);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

// torch's op rather than the formula: the official model and diffusers both call it, and the
// formula differs from it in the last bits of 1% of values, enough to flip bf16 roundings.
torch::Tensor gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }

// Rotates each (even, odd) pair of the head dimension by its angle: the complex product of the
// official rope_apply written with real arithmetic. x: [B, L, H, D]; cos/sin: [L, 1, D/2].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  const auto sizes = x.sizes().vec();
  torch::Tensor pairs = x.reshape({sizes[0], sizes[1], sizes[2], sizes[3] / 2, 2});
  torch::Tensor a = pairs.select(-1, 0);
  torch::Tensor b = pairs.select(-1, 1);
  return torch::stack({a * cos - b * sin, a * sin + b * cos}, -1).reshape(sizes);
}

// 1D sinusoidal embedding of the timesteps, [cos, sin]. kFloat64 computes it as the official
// model does; kFloat32 with diffusers' operations (get_timestep_embedding), so that the runner
// and a diffusers pipeline round q/k/v to the same bf16 values.
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int dim, SinusoidPrecision precision) {
  const int half = dim / 2;
  torch::Tensor sinusoid;
  if (precision == SinusoidPrecision::kFloat64) {
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(t.device());
    torch::Tensor freqs = torch::pow(10000.0, -torch::arange(half, f64) / double(half));
    sinusoid = torch::outer(t.to(torch::kFloat64), freqs);
  } else {
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(t.device());
    torch::Tensor exponent = -std::log(10000.0) * torch::arange(0, half, f32);
    torch::Tensor freqs = torch::exp(exponent / double(half));
    sinusoid = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  }
  return torch::cat({torch::cos(sinusoid), torch::sin(sinusoid)}, 1).to(torch::kFloat32);
}

}  // namespace

torch::Tensor round_to_bf16(const torch::Tensor& t) {
  return t.to(torch::kBFloat16).to(torch::kFloat32);
}

torch::Tensor rope_angles(const Grid& grid, int head_dim) {
  const int c = head_dim / 2;
  const int hw_pairs = c / 3;
  const int f_pairs = c - 2 * hw_pairs;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // rope_params(1024, 2 * pairs): position * theta^(-2j / (2 * pairs)).
  auto axis = [&](int positions, int pairs) {
    torch::Tensor inv = 1.0 / torch::pow(kRopeTheta, torch::arange(0, 2 * pairs, 2, f64) /
                                                          double(2 * pairs));
    return torch::outer(torch::arange(positions, f64), inv);
  };
  const int64_t F_ = grid.frames, H = grid.height, W = grid.width;
  torch::Tensor af = axis(grid.frames, f_pairs).view({F_, 1, 1, f_pairs}).expand({F_, H, W, f_pairs});
  torch::Tensor ah = axis(grid.height, hw_pairs).view({1, H, 1, hw_pairs}).expand({F_, H, W, hw_pairs});
  torch::Tensor aw = axis(grid.width, hw_pairs).view({1, 1, W, hw_pairs}).expand({F_, H, W, hw_pairs});
  return torch::cat({af, ah, aw}, -1).reshape({F_ * H * W, c});
}

Grid WanModel::token_grid(int frames, int height, int width) const {
  return sparseplan::token_grid(config, frames, height, width);
}

torch::Tensor WanModel::forward(const torch::Tensor& x_in, const torch::Tensor& t,
                                const torch::Tensor& context_in, const AttentionFn& attention,
                                const ForwardContext& where) const {
  const WanConfig& c = config;
  if (x_in.dim() != 5 || x_in.size(1) != c.in_dim)
    throw std::invalid_argument("forward: x must be [B, " + std::to_string(c.in_dim) +
                                ", F, H, W]");
  const int64_t B = x_in.size(0);
  if (t.dim() != 1 || t.size(0) != B)
    throw std::invalid_argument("forward: t must be [B] with the batch size of x");
  if (context_in.dim() != 3 || context_in.size(0) != B || context_in.size(2) != c.text_dim ||
      context_in.size(1) > c.text_len)
    throw std::invalid_argument("forward: context must be [B, L <= " +
                                std::to_string(c.text_len) + ", " +
                                std::to_string(c.text_dim) + "]");
  if (!attention) throw std::invalid_argument("forward: no attention function");
  torch::NoGradGuard no_grad;

  const Grid grid = token_grid(int(x_in.size(2)), int(x_in.size(3)), int(x_in.size(4)));
  const auto& p = c.patch_size;
  const int64_t L = grid.tokens(), n = c.num_heads, d = c.head_dim();

  // Patch embedding as the Conv3d the official model runs: the same map as a linear layer on
  // flattened patches, but summed in another order, which flips bf16 roundings of q/k later.
  const std::vector<int64_t> stride{p[0], p[1], p[2]};
  torch::Tensor x = torch::conv3d(x_in.to(device, patch_w.scalar_type()), patch_w,
                                  patch_b.to(patch_w.scalar_type()), stride)
                        .to(torch::kFloat32)
                        .flatten(2)
                        .transpose(1, 2);

  torch::Tensor e = sinusoidal_embedding(t.to(device), c.freq_dim, sinusoid_precision);
  e = linear(torch::silu(linear(e, time0_w, time0_b)), time2_w, time2_b);       // [B, dim]
  torch::Tensor e0 = linear(torch::silu(e), time_proj_w, time_proj_b).view({B, 6, c.dim});

  torch::Tensor context = context_in.to(device, torch::kFloat32);
  if (context.size(1) < c.text_len)
    context = torch::cat({context, torch::zeros({B, c.text_len - context.size(1), c.text_dim},
                                                context.options())}, 1);
  context = linear(gelu_tanh(linear(context, text0_w, text0_b)), text2_w, text2_b);

  const torch::Tensor& order = where.token_order;
  if (order.defined()) {
    if (order.dim() != 1 || order.size(0) != L || order.scalar_type() != torch::kLong ||
        order.device() != x.device())
      throw std::invalid_argument("forward: token_order must be int64 [" + std::to_string(L) +
                                  "] on the model's device");
    x = x.index_select(1, order);
  }
  torch::Tensor angles = rope_angles(grid, int(d)).to(device);
  if (order.defined()) angles = angles.index_select(0, order);
  const torch::Tensor cos = torch::cos(angles).to(torch::kFloat32).unsqueeze(1);
  const torch::Tensor sin = torch::sin(angles).to(torch::kFloat32).unsqueeze(1);

  AttentionCall call;
  call.step = where.step;
  call.branch = where.branch;
  call.timestep = t[0].item<double>();
  call.grid = grid;
  call.token_order = order;

  // One reduction per layer (a sum is finite exactly when every summand is, and float32 values
  // cannot overflow a double sum), checked once at the end so the stream never waits on it.
  std::vector<torch::Tensor> stream_sums;
  stream_sums.reserve(size_t(c.num_layers) + 1);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const WanBlockWeights& w = blocks[size_t(layer)];
    const std::vector<torch::Tensor> m = (w.modulation + e0).chunk(6, 1);  // each [B, 1, dim]

    // Self-attention on the modulated, normalised stream.
    torch::Tensor h = layer_norm(x, c.eps) * (1 + m[1]) + m[0];
    torch::Tensor q = linear(h, w.q_w, w.q_b);
    torch::Tensor k = linear(h, w.k_w, w.k_b);
    if (c.qk_norm) {
      q = rms_norm(q, w.norm_q, c.eps);
      k = rms_norm(k, w.norm_k, c.eps);
    }
    q = apply_rope(q.view({B, L, n, d}), cos, sin);
    k = apply_rope(k.view({B, L, n, d}), cos, sin);
    torch::Tensor v = linear(h, w.v_w, w.v_b).view({B, L, n, d});
    call.layer = layer;
    torch::Tensor y = attention(call, round_to_bf16(q), round_to_bf16(k), round_to_bf16(v));
    y = linear(y.to(torch::kFloat32).reshape({B, L, c.dim}), w.o_w, w.o_b);
    x = x + y * m[2];

    // Cross-attention on the text, always dense: it is small and not what plans sparsify. Its
    // q/k/v are rounded to bf16 too, as the official model's flash attention runs in bf16.
    h = c.cross_attn_norm ? torch::layer_norm(x, {c.dim}, w.norm3_w, w.norm3_b, c.eps) : x;
    q = linear(h, w.cq_w, w.cq_b);
    k = linear(context, w.ck_w, w.ck_b);
    if (c.qk_norm) {
      q = rms_norm(q, w.cnorm_q, c.eps);
      k = rms_norm(k, w.cnorm_k, c.eps);
    }
    v = linear(context, w.cv_w, w.cv_b);
    y = dense_attention(round_to_bf16(q.view({B, L, n, d})),
                        round_to_bf16(k.view({B, c.text_len, n, d})),
                        round_to_bf16(v.view({B, c.text_len, n, d})));
    x = x + linear(y.reshape({B, L, c.dim}), w.co_w, w.co_b);

    // Feed-forward.
    h = layer_norm(x, c.eps) * (1 + m[4]) + m[3];
    y = linear(gelu_tanh(linear(h, w.ffn0_w, w.ffn0_b)), w.ffn2_w, w.ffn2_b);
    x = x + y * m[5];
    stream_sums.push_back(x.sum(torch::kDouble));
  }

  const std::vector<torch::Tensor> hm = (head_modulation + e.unsqueeze(1)).chunk(2, 1);
  x = linear(layer_norm(x, c.eps) * (1 + hm[1]) + hm[0], head_w, head_b);
  stream_sums.push_back(x.sum(torch::kDouble));
  check_finite_stream(stream_sums, where);
  if (order.defined()) x = torch::empty_like(x).index_copy_(1, order, x);

  // Unpatchify: [B, f, h, w, pf, ph, pw, C] -> [B, C, f*pf, h*ph, w*pw].
  x = x.view({B, grid.frames, grid.height, grid.width, p[0], p[1], p[2], c.out_dim})
          .permute({0, 7, 1, 4, 2, 5, 3, 6})
          .reshape({B, c.out_dim, int64_t(grid.frames) * p[0], int64_t(grid.height) * p[1],
                    int64_t(grid.width) * p[2]});
  return x;
}

WanModel load_wan_model(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kHalf)
    throw std::invalid_argument("load_wan_model: dtype must be float32, bfloat16 or float16");
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("load_wan_model: CUDA was asked for but is not available");
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  if (!std::filesystem::is_regular_file(config_path))
    throw std::runtime_error(dir + ": no config.json (is this a Wan2.1 model directory?)");

  WanModel m;
  m.config = load_wan_config(config_path);
  m.source = dir;
  m.device = device;
  m.dtype = dtype;
  const WanConfig& c = m.config;
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  check_layer_count(ckpt, c.num_layers, config_path);
  WeightLoader wl(ckpt, device, dtype);
  const int64_t D = c.dim, P = int64_t(c.patch_size[0]) * c.patch_size[1] * c.patch_size[2];

  m.patch_w = wl.weight("patch_embedding.weight",
                        {D, c.in_dim, c.patch_size[0], c.patch_size[1], c.patch_size[2]});
  m.patch_b = wl.exact("patch_embedding.bias", {D});
  m.text0_w = wl.weight("text_embedding.0.weight", {D, c.text_dim});
  m.text0_b = wl.exact("text_embedding.0.bias", {D});
  m.text2_w = wl.weight("text_embedding.2.weight", {D, D});
  m.text2_b = wl.exact("text_embedding.2.bias", {D});
  m.time0_w = wl.weight("time_embedding.0.weight", {D, c.freq_dim});
  m.time0_b = wl.exact("time_embedding.0.bias", {D});
  m.time2_w = wl.weight("time_embedding.2.weight", {D, D});
  m.time2_b = wl.exact("time_embedding.2.bias", {D});
  m.time_proj_w = wl.weight("time_projection.1.weight", {6 * D, D});
  m.time_proj_b = wl.exact("time_projection.1.bias", {6 * D});

  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    WanBlockWeights w;
    w.modulation = wl.exact(b + "modulation", {1, 6, D});
    auto attn = [&](const std::string& a, torch::Tensor* qw, torch::Tensor* qb, torch::Tensor* kw,
                    torch::Tensor* kb, torch::Tensor* vw, torch::Tensor* vb, torch::Tensor* ow,
                    torch::Tensor* ob, torch::Tensor* nq, torch::Tensor* nk) {
      *qw = wl.weight(b + a + ".q.weight", {D, D});
      *qb = wl.exact(b + a + ".q.bias", {D});
      *kw = wl.weight(b + a + ".k.weight", {D, D});
      *kb = wl.exact(b + a + ".k.bias", {D});
      *vw = wl.weight(b + a + ".v.weight", {D, D});
      *vb = wl.exact(b + a + ".v.bias", {D});
      *ow = wl.weight(b + a + ".o.weight", {D, D});
      *ob = wl.exact(b + a + ".o.bias", {D});
      if (c.qk_norm) {
        *nq = wl.exact(b + a + ".norm_q.weight", {D});
        *nk = wl.exact(b + a + ".norm_k.weight", {D});
      }
    };
    attn("self_attn", &w.q_w, &w.q_b, &w.k_w, &w.k_b, &w.v_w, &w.v_b, &w.o_w, &w.o_b, &w.norm_q,
         &w.norm_k);
    attn("cross_attn", &w.cq_w, &w.cq_b, &w.ck_w, &w.ck_b, &w.cv_w, &w.cv_b, &w.co_w, &w.co_b,
         &w.cnorm_q, &w.cnorm_k);
    if (c.cross_attn_norm) {
      w.norm3_w = wl.exact(b + "norm3.weight", {D});
      w.norm3_b = wl.exact(b + "norm3.bias", {D});
    }
    w.ffn0_w = wl.weight(b + "ffn.0.weight", {c.ffn_dim, D});
    w.ffn0_b = wl.exact(b + "ffn.0.bias", {c.ffn_dim});
    w.ffn2_w = wl.weight(b + "ffn.2.weight", {D, c.ffn_dim});
    w.ffn2_b = wl.exact(b + "ffn.2.bias", {D});
    m.blocks.push_back(std::move(w));
  }
  m.head_w = wl.weight("head.head.weight", {P * c.out_dim, D});
  m.head_b = wl.exact("head.head.bias", {P * c.out_dim});
  m.head_modulation = wl.exact("head.modulation", {1, 2, D});
  wl.check_all_used();
  return m;
}

}  // namespace sparseplan
