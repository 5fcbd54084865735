// What a model folder may not get away with (issue 14): non-finite or integer weights, shards
// that resolve outside the folder, config values beyond the limits or not matching the
// checkpoint, and a forward whose stream overflows. Each is refused naming the tensor, field or
// layer, before anything large is allocated. Checkpoints are made from wan-mini in the test.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/flow_sampler.h"
#include "model/wan_config.h"
#include "model/wan_model.h"
#include "scratch_dir.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using namespace sparseplan;

namespace {

const std::string kModelDir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";

nlohmann::json wan_mini_config() {
  return nlohmann::json::parse(std::ifstream(kModelDir + "/config.json"));
}

// wan-mini as one safetensors file in `dir`, with `config`, after `alter` changed its tensors.
void write_model(const fs::path& dir, const nlohmann::json& config,
                 const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>&
                     alter) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kModelDir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const std::string& name : ckpt.names()) tensors.emplace_back(name, ckpt.load(name));
  alter(tensors);
  write_safetensors((dir / "diffusion_pytorch_model.safetensors").string(), tensors);
  std::ofstream(dir / "config.json") << config.dump();
}

torch::Tensor& tensor_named(std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                            const std::string& name) {
  for (auto& [n, t] : tensors)
    if (n == name) return t;
  throw std::runtime_error("wan-mini has no tensor " + name);
}

// An index naming the three wan-mini shards, written as a regular file into `dir`.
void copy_index(const fs::path& dir) {
  std::ifstream in(kModelDir + "/diffusion_pytorch_model.safetensors.index.json");
  std::ofstream(dir / "diffusion_pytorch_model.safetensors.index.json") << in.rdbuf();
}

void link_shards(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(kModelDir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("diffusion_pytorch_model-", 0) == 0) fs::create_symlink(e.path(), dir / name);
  }
}

}  // namespace

TEST_CASE("a NaN weight is refused at load naming the tensor and the count", "[checkpoint]") {
  const ScratchDir scratch("nan_weight");
  write_model(scratch.path(), wan_mini_config(), [](auto& tensors) {
    torch::Tensor& w = tensor_named(tensors, "blocks.3.ffn.0.weight");
    w = w.clone();
    w[0][5] = std::numeric_limits<float>::quiet_NaN();
    w[1][0] = std::numeric_limits<float>::quiet_NaN();
  });
  CHECK_THROWS_WITH(load_wan_model(scratch.path().string()),
                    Catch::Contains("tensor 'blocks.3.ffn.0.weight' holds 2 NaN and 0 infinite") &&
                        Catch::Contains("first at flat index 5"));
}

TEST_CASE("an infinite weight is refused at load naming the tensor", "[checkpoint]") {
  const ScratchDir scratch("inf_weight");
  write_model(scratch.path(), wan_mini_config(), [](auto& tensors) {
    torch::Tensor& w = tensor_named(tensors, "head.modulation");
    w = w.clone();
    w[0][1][7] = -std::numeric_limits<float>::infinity();
  });
  CHECK_THROWS_WITH(load_wan_model(scratch.path().string()),
                    Catch::Contains("tensor 'head.modulation' holds 0 NaN and 1 infinite"));
}

TEST_CASE("an I64 weight is refused naming the tensor", "[checkpoint]") {
  const ScratchDir scratch("i64_weight");
  write_model(scratch.path(), wan_mini_config(), [](auto& tensors) {
    torch::Tensor& w = tensor_named(tensors, "head.head.bias");
    w = w.to(torch::kInt64);
  });
  CHECK_THROWS_WITH(load_wan_model(scratch.path().string()),
                    Catch::Contains("tensor 'head.head.bias' has dtype I64") &&
                        Catch::Contains("BF16, F16 or F32"));
}

TEST_CASE("a shard linked from outside the model folder is refused", "[checkpoint]") {
  const ScratchDir scratch("outside_shard");
  copy_index(scratch.path());
  link_shards(scratch.path());
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(scratch.path().string()),
                    Catch::Contains("outside the model folder"));
}

TEST_CASE("a shard named with .. is refused", "[checkpoint]") {
  const ScratchDir scratch("dotdot_shard");
  std::ofstream(scratch.path() / "model.safetensors.index.json")
      << R"({"weight_map": {"w": "../elsewhere.safetensors"}})";
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(scratch.path().string()),
                    Catch::Contains("bad shard name '../elsewhere.safetensors'"));
}

TEST_CASE("an index linked together with its shards loads, as in a Hugging Face cache",
          "[checkpoint]") {
  const ScratchDir scratch("linked_index");
  link_shards(scratch.path());
  fs::create_symlink(kModelDir + "/diffusion_pytorch_model.safetensors.index.json",
                     scratch.path() / "diffusion_pytorch_model.safetensors.index.json");
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(scratch.path().string());
  CHECK(ckpt.contains("head.head.weight"));
}

TEST_CASE("num_layers beyond the limit is refused before any weight is read", "[checkpoint]") {
  nlohmann::json config = wan_mini_config();
  config["num_layers"] = std::numeric_limits<int>::max();
  CHECK_THROWS_WITH(parse_wan_config(config, "config.json"),
                    Catch::Contains("config.json: num_layers: must be in [1, 4096], got 2147483647"));
}

TEST_CASE("config values beyond int are refused naming the field", "[checkpoint]") {
  nlohmann::json config = wan_mini_config();
  config["dim"] = int64_t(1) << 40;
  CHECK_THROWS_WITH(parse_wan_config(config, "config.json"),
                    Catch::Contains("config.json: dim: 1099511627776 is out of range"));
}

TEST_CASE("a num_layers the checkpoint does not hold is refused before loading", "[checkpoint]") {
  const ScratchDir scratch("layer_count");
  link_shards(scratch.path());
  fs::create_symlink(kModelDir + "/diffusion_pytorch_model.safetensors.index.json",
                     scratch.path() / "diffusion_pytorch_model.safetensors.index.json");
  nlohmann::json config = wan_mini_config();
  config["num_layers"] = 9;
  std::ofstream(scratch.path() / "config.json") << config.dump();
  CHECK_THROWS_WITH(load_wan_model(scratch.path().string()),
                    Catch::Contains("num_layers is 9") && Catch::Contains("holds 8 transformer blocks"));
}

TEST_CASE("a forward whose stream overflows names the first bad layer and the step",
          "[checkpoint]") {
  WanModel model = load_wan_model(kModelDir);
  // A replaced tensor, not an in-place change: other copies of the weights stay intact.
  model.blocks[2].o_b = torch::full_like(model.blocks[2].o_b, std::numeric_limits<float>::infinity());
  const AttentionFn dense = [](const AttentionCall&, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v) {
    return dense_attention(q, k, v);
  };
  const torch::Tensor x = seeded_noise(1, 3, 2, 16, 16).unsqueeze(0);
  const torch::Tensor t = torch::full({1}, 500.0);
  const torch::Tensor context = torch::zeros({1, 16, 64});
  CHECK_THROWS_WITH(model.forward(x, t, context, dense, ForwardContext{4, 1}),
                    Catch::Contains("layer 2 at step 4 (unconditional)"));
}

TEST_CASE("a finite forward passes the stream check", "[checkpoint]") {
  const WanModel model = load_wan_model(kModelDir);
  const AttentionFn dense = [](const AttentionCall&, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v) {
    return dense_attention(q, k, v);
  };
  const torch::Tensor x = seeded_noise(1, 3, 2, 16, 16).unsqueeze(0);
  const torch::Tensor out =
      model.forward(x, torch::full({1}, 500.0), torch::zeros({1, 16, 64}), dense, {0, 0});
  CHECK(torch::isfinite(out).all().item<bool>());
}
