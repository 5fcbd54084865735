// Wan2.1 text-to-video transformer (the official `WanModel` math, t2v) on CPU or CUDA, loaded
// from a diffusers-layout checkpoint directory (config.json + safetensors, single or sharded).
// Every self-attention call goes through an AttentionFn so that dense attention, capture and
// sparse plans share one model.
#pragma once

#include <string>
#include <vector>

#include "model/attention_backend.h"
#include "model/wan_config.h"

namespace sparseplan {

struct WanBlockWeights {
  torch::Tensor modulation;  // [1, 6, dim] float32
  torch::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, norm_q, norm_k;            // self-attn
  torch::Tensor cq_w, cq_b, ck_w, ck_b, cv_w, cv_b, co_w, co_b, cnorm_q, cnorm_k;  // cross-attn
  torch::Tensor norm3_w, norm3_b;  // only with cross_attn_norm
  torch::Tensor ffn0_w, ffn0_b, ffn2_w, ffn2_b;
};

// Which denoising step and guidance branch a forward belongs to; passed on to every
// AttentionCall.
struct ForwardContext {
  int step = -1;
  int branch = 0;  // 0: conditional, 1: unconditional
  // When defined, int64 [tokens] on the model's device, a permutation: the forward runs its
  // token stream with row i holding model token token_order[i] from the patch embedding to the
  // head, so every self-attention call gets q, k, v in that order (an attention backend that
  // wants tiles asks for it: PlanBackend::stream_order). Per-token layers do not care where a
  // token sits; the output is in model order.
  torch::Tensor token_order;
};

// Precision of the timestep sinusoid: float64 as the official Wan2.1 code, or float32 with the
// operations of diffusers' WanTransformer3DModel (the two differ by ~4e-7 after the time MLP,
// enough to flip some bf16 roundings of q/k; runs compared with a diffusers pipeline use kFloat32).
enum class SinusoidPrecision { kFloat64, kFloat32 };

class WanModel {
 public:
  WanConfig config;
  std::string source;  // checkpoint directory
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;  // weights of the linear layers
  SinusoidPrecision sinusoid_precision = SinusoidPrecision::kFloat64;

  torch::Tensor patch_w, patch_b;  // patch embedding, the Conv3d's: [dim, in_dim, pf, ph, pw]
  torch::Tensor text0_w, text0_b, text2_w, text2_b;
  torch::Tensor time0_w, time0_b, time2_w, time2_b;
  torch::Tensor time_proj_w, time_proj_b;
  std::vector<WanBlockWeights> blocks;
  torch::Tensor head_w, head_b, head_modulation;

  // x: [B, in_dim, F, H, W] with F, H, W multiples of the patch size; t: [B] timesteps
  // (1000 * sigma); context: [B, L <= text_len, text_dim] (padded with zero rows to text_len as
  // the official model does). Returns the velocity [B, out_dim, F, H, W] in float32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& context, const AttentionFn& attention,
                        const ForwardContext& where = {}) const;

  // The token grid (F/pf, H/ph, W/pw) of a video of the given size; throws if not divisible.
  Grid token_grid(int frames, int height, int width) const;
};

// Loads `dir`/config.json and the checkpoint in `dir` (a `*.safetensors.index.json` with its
// shards, or one `*.safetensors`). dtype: kFloat32, kBFloat16 or kHalf for the linear weights;
// norms, modulation and the residual stream stay float32. Throws naming the missing or
// mis-shaped tensor.
WanModel load_wan_model(const std::string& dir, torch::Device device = torch::kCPU,
                        torch::ScalarType dtype = torch::kFloat32);

// The 3D RoPE rotation angles for a grid, [tokens, head_dim / 2] float64, frame-major order:
// per head-dim pair, the frame, height or width position times its frequency.
torch::Tensor rope_angles(const Grid& grid, int head_dim);

// Rounds to bfloat16 and back, the precision the reference gives attention inputs.
torch::Tensor round_to_bf16(const torch::Tensor& t);

}  // namespace sparseplan
