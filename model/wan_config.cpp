#include "model/wan_config.h"

#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "plan/limits.h"

namespace sparseplan {
namespace {

using nlohmann::json;

constexpr int kMaxPatch = 64;

[[noreturn]] void bad(const std::string& source, const std::string& field, const std::string& why) {
  throw std::invalid_argument(source + ": " + field + ": " + why);
}

// Integers beyond int are refused here, before they could wrap; validate_wan_config applies
// the per-field limits.
int as_int(const json& v, const std::string& source, const char* field) {
  if (!v.is_number_integer()) bad(source, field, "expected an integer");
  const bool fits = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max())
                        : v.get<int64_t>() >= std::numeric_limits<int>::min() &&
                              v.get<int64_t>() <= std::numeric_limits<int>::max();
  if (!fits) bad(source, field, v.dump() + " is out of range");
  return v.get<int>();
}

int get_int(const json& j, const std::string& source, const char* field, int fallback) {
  if (!j.contains(field)) return fallback;
  return as_int(j[field], source, field);
}

template <size_t N>
std::array<int, N> get_ints(const json& j, const std::string& source, const char* field,
                            std::array<int, N> fallback) {
  if (!j.contains(field)) return fallback;
  const json& a = j[field];
  if (!a.is_array() || a.size() != N)
    bad(source, field, "expected a list of " + std::to_string(N) + " integers");
  std::array<int, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = as_int(a[i], source, field);
  return out;
}

}  // namespace

WanConfig parse_wan_config(const json& j, const std::string& source) {
  if (!j.is_object()) throw std::invalid_argument(source + ": config is not a JSON object");
  WanConfig c;
  if (j.contains("model_type")) {
    if (!j["model_type"].is_string()) bad(source, "model_type", "expected a string");
    c.model_type = j["model_type"].get<std::string>();
  }
  c.patch_size = get_ints<3>(j, source, "patch_size", c.patch_size);
  c.text_len = get_int(j, source, "text_len", c.text_len);
  c.in_dim = get_int(j, source, "in_dim", c.in_dim);
  c.dim = get_int(j, source, "dim", c.dim);
  c.ffn_dim = get_int(j, source, "ffn_dim", c.ffn_dim);
  c.freq_dim = get_int(j, source, "freq_dim", c.freq_dim);
  c.text_dim = get_int(j, source, "text_dim", c.text_dim);
  c.out_dim = get_int(j, source, "out_dim", c.out_dim);
  c.num_heads = get_int(j, source, "num_heads", c.num_heads);
  c.num_layers = get_int(j, source, "num_layers", c.num_layers);
  c.window_size = get_ints<2>(j, source, "window_size", c.window_size);
  for (const char* f : {"qk_norm", "cross_attn_norm"}) {
    if (!j.contains(f)) continue;
    if (!j[f].is_boolean()) bad(source, f, "expected true or false");
    (std::string(f) == "qk_norm" ? c.qk_norm : c.cross_attn_norm) = j[f].get<bool>();
  }
  if (j.contains("eps")) {
    if (!j["eps"].is_number()) bad(source, "eps", "expected a number");
    c.eps = j["eps"].get<double>();
  }
  validate_wan_config(c, source);
  return c;
}

void validate_wan_config(const WanConfig& c, const std::string& source) {
  if (c.model_type != "t2v")
    bad(source, "model_type", "'" + c.model_type + "' is not supported (only t2v)");
  for (int p : c.patch_size)
    if (p < 1 || p > kMaxPatch)
      bad(source, "patch_size", "entries must be in [1, " + std::to_string(kMaxPatch) + "]");
  // Upper limits well above every released Wan2.1 model (14B: dim 5120, ffn_dim 13824, 40 layers
  // of 40 heads), checked before any weight is allocated: a corrupt config fails here at once.
  struct Field {
    const char* name;
    int value;
    int max;
  };
  const Field fields[] = {{"text_len", c.text_len, kMaxTextTokens}, {"in_dim", c.in_dim, 1 << 12},
                          {"dim", c.dim, 1 << 16},         {"ffn_dim", c.ffn_dim, 1 << 18},
                          {"freq_dim", c.freq_dim, 1 << 16}, {"text_dim", c.text_dim, 1 << 16},
                          {"out_dim", c.out_dim, 1 << 12}, {"num_heads", c.num_heads, kMaxHeads},
                          {"num_layers", c.num_layers, kMaxLayers}};
  for (const Field& f : fields)
    if (f.value < 1 || f.value > f.max)
      bad(source, f.name, "must be in [1, " + std::to_string(f.max) + "], got " +
                              std::to_string(f.value));
  if (c.freq_dim % 2 != 0) bad(source, "freq_dim", "must be even");
  if (c.dim % c.num_heads != 0)
    bad(source, "num_heads", "dim " + std::to_string(c.dim) + " is not divisible by " +
                                 std::to_string(c.num_heads) + " heads");
  if (c.head_dim() > kMaxHeadDim)
    bad(source, "num_heads", "head dim " + std::to_string(c.head_dim()) + " exceeds the limit of " +
                                 std::to_string(kMaxHeadDim));
  if (c.head_dim() % 2 != 0 || c.head_dim() < 6)
    bad(source, "num_heads", "head dim " + std::to_string(c.head_dim()) +
                                 " must be even and >= 6 for the 3D RoPE");
  if (c.window_size[0] != -1 || c.window_size[1] != -1)
    bad(source, "window_size", "only global attention (-1, -1) is supported");
  if (!(c.eps > 0 && c.eps < 1)) bad(source, "eps", "must be in (0, 1)");
}

WanConfig load_wan_config(const std::string& path) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    throw std::invalid_argument(path + ": not valid JSON (" + e.what() + ")");
  }
  return parse_wan_config(j, path);
}

Grid token_grid(const WanConfig& config, int frames, int height, int width) {
  const auto& p = config.patch_size;
  if (frames < 1 || height < 1 || width < 1 || frames % p[0] || height % p[1] || width % p[2])
    throw std::invalid_argument(
        "video size " + std::to_string(frames) + " x " + std::to_string(height) + " x " +
        std::to_string(width) + " must be positive multiples of the patch size (" +
        std::to_string(p[0]) + ", " + std::to_string(p[1]) + ", " + std::to_string(p[2]) + ")");
  return Grid{frames / p[0], height / p[1], width / p[2]};
}

}  // namespace sparseplan
