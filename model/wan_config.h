// The Wan2.1 transformer's config.json (the diffusers `WanModel` config fields), validated.
#pragma once

#include <array>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "plan/plan.h"

namespace sparseplan {

struct WanConfig {
  std::string model_type = "t2v";
  std::array<int, 3> patch_size{1, 2, 2};  // (frames, height, width)
  int text_len = 512;
  int in_dim = 16;
  int dim = 2048;
  int ffn_dim = 8192;
  int freq_dim = 256;
  int text_dim = 4096;
  int out_dim = 16;
  int num_heads = 16;
  int num_layers = 32;
  std::array<int, 2> window_size{-1, -1};
  bool qk_norm = true;
  bool cross_attn_norm = true;
  double eps = 1e-6;

  int head_dim() const { return dim / num_heads; }
};

// Throws std::invalid_argument naming `source` and the field on a missing, mistyped or
// unsupported value (only t2v models with global attention are supported).
WanConfig parse_wan_config(const nlohmann::json& json, const std::string& source);
WanConfig load_wan_config(const std::string& config_json_path);
void validate_wan_config(const WanConfig& config, const std::string& source);

// The token grid (F/pf, H/ph, W/pw) of a video of the given size; throws
// std::invalid_argument when the size is not a positive multiple of the patch size.
Grid token_grid(const WanConfig& config, int frames, int height, int width);

}  // namespace sparseplan
