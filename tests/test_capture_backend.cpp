#include <filesystem>

#include <torch/types.h>
#include <torch/utils.h>

#include "runtime/block_mass_torch.h"
#include "io/capture_file.h"
#include "runtime/capture_backend.h"
#include "model/flow_sampler.h"
#include "model/text_encoder.h"
#include "model/wan_model.h"
#include "scratch_dir.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;
namespace fs = std::filesystem;

namespace {

CaptureInfo toy_info() {
  CaptureInfo info;
  info.model = {"toy", 3, 2, 8};
  info.grid = {4, 8, 8};
  info.block_size = 64;
  info.tiles = {{4, 4, 4}, {1, 8, 8}};
  info.num_prompts = 2;
  info.prompts = {"a", "b"};
  info.seeds = {1, 2};
  info.steps = {1, 3};
  info.layers = {0, 2};
  return info;
}

AttentionCall call_at(int step, int layer, int branch, const Grid& grid = {4, 8, 8}) {
  AttentionCall c;
  c.step = step;
  c.layer = layer;
  c.branch = branch;
  c.timestep = 1000.0 - 100.0 * step;
  c.grid = grid;
  return c;
}

torch::Tensor random_heads(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({1, 256, 2, 8}) * 1.5;
}

}  // namespace

TEST_CASE("capture backend: records the asked steps, layers and branch; returns dense attention") {
  const ScratchDir scratch("backend");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "backend.h5").string();
  CaptureWriter writer(path, toy_info());
  CaptureBackend backend(writer);
  const AttentionFn fn = backend.attention();
  CHECK(backend.calls_per_prompt() == 4);
  BlockMassOptions mo;
  mo.tiles = toy_info().tiles;
  const BlockMassComputer reference({4, 8, 8}, {}, mo);
  torch::Tensor expected_mass;  // prompt 1, step 3, layer 2, tile 1x8x8
  for (int p = 0; p < 2; ++p) {
    backend.set_prompt(p);
    for (int step = 0; step < 5; ++step)
      for (int layer = 0; layer < 3; ++layer)
        for (int branch = 0; branch < 2; ++branch) {
          const uint64_t seed = uint64_t(p * 1000 + step * 10 + layer * 2 + branch);
          const torch::Tensor q = random_heads(seed), k = random_heads(seed + 7),
                              v = random_heads(seed + 9);
          const torch::Tensor out = fn(call_at(step, layer, branch), q, k, v);
          CHECK(torch::allclose(out, dense_attention(q, k, v), 1e-4, 1e-5));
          if (p == 1 && step == 3 && layer == 2 && branch == 0)
            expected_mass = reference(q, k, v).tiles[1].mass[0];
        }
  }
  CHECK(backend.captured_calls() == 2 * 2 * 2);
  writer.finish();

  const CaptureInfo info = read_capture_info(path);
  CHECK(info.timesteps == std::vector<double>{900.0, 700.0});
  CHECK(info.layers == std::vector<int>{0, 2});
  const std::vector<float> mass = read_head_block_mass(path, {1, 8, 8}, 2, 1);
  const int nb = capture_num_blocks(info, {1, 8, 8});
  const torch::Tensor got =
      torch::from_blob(const_cast<float*>(mass.data()) + (1 * 2 + 1) * nb * nb, {nb, nb});
  CHECK(torch::allclose(got, expected_mass[1], 1e-6, 1e-7));
}

TEST_CASE("capture backend: a call on another grid is refused naming both grids") {
  const ScratchDir scratch("backend");
  const fs::path& dir = scratch.path();
  CaptureWriter writer((dir / "grid.h5").string(), toy_info());
  CaptureBackend backend(writer);
  const torch::Tensor x = torch::randn({1, 512, 2, 8});
  CHECK_THROWS_WITH(backend(call_at(1, 0, 0, {8, 8, 8}), x, x, x),
                    Catch::Contains("8x8x8") && Catch::Contains("4x8x8"));
  // Calls that are not captured run dense whatever their grid.
  CHECK(backend(call_at(0, 0, 0, {8, 8, 8}), x, x, x).sizes() == x.sizes());
  CHECK_THROWS_AS(backend.set_prompt(2), std::invalid_argument);
}

TEST_CASE("capture backend: a captured call in another token order than the model's is refused") {
  const ScratchDir scratch("backend");
  CaptureWriter writer((scratch.path() / "order.h5").string(), toy_info());
  CaptureBackend backend(writer);
  const torch::Tensor x = random_heads(5);
  AttentionCall call = call_at(1, 0, 0);
  call.token_order = torch::arange(255, -1, -1, torch::kLong);
  CHECK_THROWS_WITH(backend(call, x, x, x), Catch::Contains("model token order"));
  CHECK(backend.captured_calls() == 0);
}

TEST_CASE("capture backend: a wan-mini sample records rows that sum to 1") {
  const std::string model_dir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";
  if (!fs::exists(model_dir + "/config.json")) {
    WARN("skipped: no wan-mini fixture at " << model_dir);
    return;
  }
  const WanModel model = load_wan_model(model_dir);
  const ToyTextEncoder encoder(model_dir + "/text_encoder.safetensors", model.config.text_len);
  const ScratchDir scratch("backend");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "wan.h5").string();

  CaptureInfo info;
  info.model = {"wan-mini", model.config.num_layers, model.config.num_heads,
                model.config.head_dim()};
  info.grid = model.token_grid(4, 32, 32);  // 4 x 8 x 8 tokens
  info.tiles = {{4, 4, 4}, {2, 4, 8}};
  info.num_prompts = 1;
  info.prompts = {"bg-solid bgcolor-black pan-still red circle move-right large"};
  info.seeds = {3};
  info.steps = {0, 1};
  CaptureWriter writer(path, info);
  CaptureBackend backend(writer);
  SampleOptions so;
  so.frames = 4;
  so.height = 32;
  so.width = 32;
  so.steps = 2;
  so.seed = 3;
  so.context = encoder.encode(info.prompts[0]);
  const torch::Tensor video = sample_video(model, so, backend.attention());
  CHECK(torch::isfinite(video).all().item<bool>());
  CHECK(backend.captured_calls() == 2 * model.config.num_layers);
  writer.finish();

  const CaptureInfo read = read_capture_info(path);
  CHECK(read.timesteps[0] == Approx(1000.0));
  for (int l = 0; l < read.model.layers; ++l)
    for (int h = 0; h < read.model.heads; ++h) {
      const std::vector<float> mass = read_head_block_mass(path, {2, 4, 8}, l, h);
      const int nb = capture_num_blocks(read, {2, 4, 8});
      for (size_t row = 0; row < mass.size() / size_t(nb); ++row) {
        double sum = 0;
        for (int j = 0; j < nb; ++j) sum += mass[row * size_t(nb) + size_t(j)];
        CHECK(sum == Approx(1.0).margin(1e-4));
      }
    }
}
