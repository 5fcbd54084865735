// Known answers for the Wan2.1 runner on wan-mini (reference.safetensors, float32 on a CPU with
// q/k/v rounded to bf16 before attention) and the behaviour of the runner's parts.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "model/flow_sampler.h"
#include "io/safetensors.h"
#include "model/text_encoder.h"
#include "model/wan_config.h"
#include "model/wan_model.h"
#include "scratch_dir.h"
#include "tensor_checks.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using namespace sparseplan;

namespace {

const std::string kModelDir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";

const WanModel& wan_mini() {
  static const WanModel model = load_wan_model(kModelDir);
  return model;
}

const SafetensorsFile& reference() {
  static const SafetensorsFile file(kModelDir + "/reference.safetensors");
  return file;
}

AttentionFn dense() {
  return [](const AttentionCall&, const torch::Tensor& q, const torch::Tensor& k,
            const torch::Tensor& v) { return dense_attention(q, k, v); };
}

}  // namespace

TEST_CASE("wan-mini forward matches the reference velocity within relative L2 2e-3") {
  const torch::Tensor velocity = wan_mini().forward(
      reference().load("x"), reference().load("t"), reference().load("context"), dense());
  const double err = relative_l2(velocity, reference().load("velocity"));
  INFO("relative L2 error " << err);
  CHECK(err < 2e-3);
}

// The issue asks for 2e-3 on the sample too, which only an implementation bit-identical with the
// one that made the reference can meet: rounding q/k/v to bf16 is discontinuous, so a float32-ulp
// difference flips a few roundings, whose effect flips more in the next layer (an error e before
// rounding becomes about sqrt(e * 2^-8) after it). Measured with scripts/wan_reference.py (the
// official Wan2.1 code in PyTorch): without the rounding, this runner and the official code agree
// to 6e-7 on the forward and 8e-6 on the sample, so the math is the same; with it, the official
// code against itself with RoPE in float32 instead of float64 moves by 1.8e-4 and 1.4e-2, and with
// the noise perturbed by a relative 1e-7 by 1.5e-2. The reference is 1.5e-2 to 1.7e-2 from the
// official code and 1.4e-2 from this runner, as far as two perturbed runs are from each other,
// and no farther from the mean of such runs than each of them is from the mean of the others (a
// misplaced rounding does stand out that way). 5e-2 sits above that floor and far below what a
// wrong sampler gives (guidance 4 or 6: 0.2; shift 1 or 5: 0.4 to 0.5).
TEST_CASE("wan-mini 4-step guided sample matches the reference sample at the bf16 noise floor") {
  SampleOptions options;
  options.steps = 4;
  options.shift = 3.0;
  options.guidance = 5.0;
  options.context = reference().load("context");
  const torch::Tensor sample =
      sample_from_noise(wan_mini(), reference().load("noise"), options, dense());
  const double err = relative_l2(sample, reference().load("sample"));
  INFO("relative L2 error " << err);
  CHECK(err < 5e-2);
}

TEST_CASE("a forward with its token stream in another order gives the same velocity") {
  const torch::Tensor x = reference().load("x");
  const Grid grid = wan_mini().token_grid(int(x.size(2)), int(x.size(3)), int(x.size(4)));
  torch::manual_seed(31);
  ForwardContext where;
  where.token_order = torch::randperm(grid.tokens(), torch::kLong);
  std::vector<torch::Tensor> seen;
  const AttentionFn recording = [&](const AttentionCall& call, const torch::Tensor& q,
                                    const torch::Tensor& k, const torch::Tensor& v) {
    seen.push_back(call.token_order);
    return dense_attention(q, k, v);
  };
  const torch::Tensor in_order =
      wan_mini().forward(x, reference().load("t"), reference().load("context"), dense());
  const torch::Tensor permuted = wan_mini().forward(x, reference().load("t"),
                                                    reference().load("context"), recording, where);
  const double err = relative_l2(permuted, in_order);
  INFO("relative L2 error " << err);
  CHECK(err < 1e-3);  // per-token layers alike; attention sums its keys in another order
  REQUIRE(seen.size() == size_t(wan_mini().config.num_layers));
  CHECK(seen.front().is_same(where.token_order));
}

TEST_CASE("a token order that is not a permutation of the grid's tokens is refused") {
  SampleOptions options;
  options.steps = 1;
  options.context = reference().load("context");
  const torch::Tensor noise = reference().load("noise");
  const int64_t n = wan_mini()
                        .token_grid(int(noise.size(2)), int(noise.size(3)), int(noise.size(4)))
                        .tokens();
  options.token_order = torch::zeros({n}, torch::kLong);
  CHECK_THROWS_WITH(sample_from_noise(wan_mini(), noise, options, dense()),
                    Catch::Contains("every token of the grid once"));
  options.token_order = torch::arange(n - 1, torch::kLong);
  CHECK_THROWS_WITH(sample_from_noise(wan_mini(), noise, options, dense()),
                    Catch::Contains("token_order must be int64"));
}

TEST_CASE("a sampler with the wrong guidance misses the reference sample by far") {
  SampleOptions options;
  options.steps = 4;
  options.guidance = 4.0;
  options.context = reference().load("context");
  const torch::Tensor sample =
      sample_from_noise(wan_mini(), reference().load("noise"), options, dense());
  CHECK(relative_l2(sample, reference().load("sample")) > 0.1);
}

TEST_CASE("toy text encoder reproduces the reference prompt's token ids and context") {
  const ToyTextEncoder encoder(kModelDir + "/text_encoder.safetensors", 16);
  const std::string prompt = reference().metadata().at("prompt");
  const std::vector<int64_t> ids = encoder.token_ids(prompt);
  const torch::Tensor want_ids = reference().load("token_ids")[0];
  for (int64_t i = 0; i < want_ids.size(0); ++i)
    CHECK(want_ids[i].item<int64_t>() == (i < int64_t(ids.size()) ? ids[size_t(i)] : 0));
  CHECK(torch::equal(encoder.encode(prompt), reference().load("context")[0]));
}

TEST_CASE("toy text encoder rejects unknown words and names them") {
  const ToyTextEncoder encoder(kModelDir + "/text_encoder.safetensors", 16);
  CHECK_THROWS_WITH(encoder.encode("bg-solid purple unicorn"),
                    Catch::Contains("'purple'") && Catch::Contains("'unicorn'"));
}

TEST_CASE("toy text encoder gives all-zero rows for the empty prompt") {
  const ToyTextEncoder encoder(kModelDir + "/text_encoder.safetensors", 16);
  const torch::Tensor empty = encoder.encode("");
  CHECK(empty.sizes() == torch::IntArrayRef({16, 64}));
  CHECK(empty.abs().sum().item<double>() == 0.0);
}

TEST_CASE("toy text encoder rejects prompts longer than text_len") {
  const ToyTextEncoder encoder(kModelDir + "/text_encoder.safetensors", 2);
  CHECK_THROWS_WITH(encoder.encode("bg-solid bgcolor-red pan-left"), Catch::Contains("at most 2"));
}

TEST_CASE("every self-attention call reports its step, layer, branch, timestep and grid") {
  std::set<std::tuple<int, int, int>> seen;
  std::vector<double> timesteps;
  AttentionFn spy = [&](const AttentionCall& call, const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v) {
    CHECK((call.grid == Grid{2, 4, 4}));
    CHECK(q.sizes() == torch::IntArrayRef({1, 32, 3, 128}));
    seen.insert({call.step, call.layer, call.branch});
    timesteps.push_back(call.timestep);
    return dense_attention(q, k, v);
  };
  SampleOptions options;
  options.steps = 2;
  options.context = torch::zeros({16, 64});
  sample_from_noise(wan_mini(), seeded_noise(1, 3, 2, 16, 16), options, spy);
  CHECK(seen.size() == 2 * 8 * 2);
  CHECK(*seen.begin() == std::make_tuple(0, 0, 0));
  CHECK(*seen.rbegin() == std::make_tuple(1, 7, 1));
  CHECK(timesteps.front() == Approx(1000.0));
  CHECK(timesteps.back() == Approx(1000.0 * flow_sigmas(2, 3.0)[1]));
}

TEST_CASE("guidance 1 runs only the conditional branch") {
  int calls = 0;
  AttentionFn count = [&](const AttentionCall& call, const torch::Tensor& q,
                          const torch::Tensor& k, const torch::Tensor& v) {
    CHECK(call.branch == 0);
    ++calls;
    return dense_attention(q, k, v);
  };
  SampleOptions options;
  options.steps = 1;
  options.guidance = 1.0;
  options.context = torch::zeros({16, 64});
  sample_from_noise(wan_mini(), seeded_noise(1, 3, 1, 8, 8), options, count);
  CHECK(calls == 8);
}

TEST_CASE("flow sigmas are shifted from 1 down to 0") {
  const std::vector<double> s = flow_sigmas(4, 3.0);
  REQUIRE(s.size() == 5);
  CHECK(s[0] == Approx(1.0));
  CHECK(s[2] == Approx(3 * 0.5 / (1 + 2 * 0.5)));
  CHECK(s[4] == 0.0);
  CHECK_THROWS_AS(flow_sigmas(0, 3.0), std::invalid_argument);
  CHECK_THROWS_AS(flow_sigmas(4, 0.0), std::invalid_argument);
}

TEST_CASE("seeded noise is reproducible and differs between seeds") {
  CHECK(torch::equal(seeded_noise(7, 3, 2, 8, 8), seeded_noise(7, 3, 2, 8, 8)));
  CHECK(!torch::equal(seeded_noise(7, 3, 2, 8, 8), seeded_noise(8, 3, 2, 8, 8)));
}

TEST_CASE("sample_video returns [3, F, H, W] and calls back once per step") {
  SampleOptions options;
  options.frames = 1;
  options.height = 8;
  options.width = 8;
  options.steps = 3;
  options.context = torch::zeros({16, 64});
  int steps_seen = 0;
  const torch::Tensor video = sample_video(wan_mini(), options, dense(), [&](int step, int steps) {
    CHECK(step == steps_seen);
    CHECK(steps == 3);
    ++steps_seen;
  });
  CHECK(steps_seen == 3);
  CHECK(video.sizes() == torch::IntArrayRef({3, 1, 8, 8}));
  CHECK(torch::isfinite(video).all().item<bool>());
}

TEST_CASE("video sizes that are not multiples of the patch size are rejected") {
  SampleOptions options;
  options.height = 30;
  options.context = torch::zeros({16, 64});
  CHECK_THROWS_WITH(sample_video(wan_mini(), options, dense()), Catch::Contains("patch size"));
}

TEST_CASE("RoPE angles split the head dimension into frame, height and width parts") {
  // head_dim 128: 22 frame pairs, 21 height pairs, 21 width pairs.
  const torch::Tensor a = rope_angles(Grid{2, 3, 4}, 128);
  REQUIRE(a.sizes() == torch::IntArrayRef({24, 64}));
  const int64_t token = 1 * 12 + 2 * 4 + 3;  // f=1, h=2, w=3
  CHECK(a[token][0].item<double>() == Approx(1.0));
  CHECK(a[token][22].item<double>() == Approx(2.0));
  CHECK(a[token][43].item<double>() == Approx(3.0));
  CHECK(a[token][1].item<double>() == Approx(std::pow(10000.0, -2.0 / 44)));
}

TEST_CASE("wan config rejects unsupported or inconsistent fields naming them") {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kModelDir + "/config.json"));
  CHECK_NOTHROW(parse_wan_config(j, "config.json"));
  nlohmann::json bad = j;
  bad["num_heads"] = 5;
  CHECK_THROWS_WITH(parse_wan_config(bad, "config.json"), Catch::Contains("num_heads"));
  bad = j;
  bad["model_type"] = "i2v";
  CHECK_THROWS_WITH(parse_wan_config(bad, "config.json"), Catch::Contains("model_type"));
  bad = j;
  bad["dim"] = "384";
  CHECK_THROWS_WITH(parse_wan_config(bad, "config.json"), Catch::Contains("dim"));
}

TEST_CASE("loading a model whose config does not match its weights names the tensor") {
  const ScratchDir scratch("wan_mismatch");
  const fs::path& dir = scratch.path();
  for (const auto& e : fs::directory_iterator(kModelDir))
    if (e.path().filename().string().rfind("diffusion_pytorch_model", 0) == 0)
      fs::create_symlink(e.path(), dir / e.path().filename());
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kModelDir + "/config.json"));
  j["ffn_dim"] = 1024;
  std::ofstream(dir / "config.json") << j.dump();
  CHECK_THROWS_WITH(load_wan_model(dir.string()), Catch::Contains("blocks.0.ffn.0.weight"));
}

TEST_CASE("a model directory without config.json is rejected") {
  CHECK_THROWS_WITH(load_wan_model("/nonexistent/model"), Catch::Contains("config.json"));
}
