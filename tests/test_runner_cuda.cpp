// The model runner, the capture and the plan runtime on CUDA give what they give on the CPU.
// On machines without a GPU every case prints why it is skipped.
#include <cmath>
#include <string>

#include "runtime/attention_profile.h"
#include "runtime/block_mass_torch.h"
#include "model/flow_sampler.h"
#include "runtime/dense_backend.h"
#include "runtime/plan_backend.h"
#include "io/safetensors.h"
#include "model/wan_model.h"
#include "search/baseline_plans.h"
#include "tensor_checks.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/utils.h>

using namespace sparseplan;

namespace {

const std::string kModelDir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";

bool skip_without_cuda() {
  if (torch::cuda::is_available()) return false;
  WARN("skipped: no CUDA device (LibTorch sees none)");
  return true;
}

// The dense-kernel cases need the kernels in this binary; a CUDA build without them fails here
// rather than passing on the LibTorch fallback.
bool skip_without_kernels() {
  if (skip_without_cuda()) return true;
  REQUIRE(cuda_kernels_available());
  return false;
}

// Random q, k, v rounded to bf16, as the runner hands them to attention.
torch::Tensor bf16_randn(std::vector<int64_t> shape, double scale, double shift) {
  return round_to_bf16(torch::randn(shape) * scale + shift);
}

const WanModel& model_on(torch::Device device) {
  static const WanModel cpu = load_wan_model(kModelDir, torch::kCPU);
  static const WanModel cuda = load_wan_model(kModelDir, torch::kCUDA);
  return device.is_cuda() ? cuda : cpu;
}

AttentionFn dense() { return dense_backend(AttentionImpl::Reference); }

}  // namespace

TEST_CASE("wan-mini forward on CUDA matches the reference velocity within relative L2 2e-3", "[gpu]") {
  if (skip_without_cuda()) return;
  const SafetensorsFile ref(kModelDir + "/reference.safetensors");
  const torch::Device cuda(torch::kCUDA);
  const torch::Tensor velocity = model_on(cuda).forward(
      ref.load("x").to(cuda), ref.load("t").to(cuda), ref.load("context").to(cuda), dense());
  REQUIRE(velocity.is_cuda());
  const double err = relative_l2(velocity, ref.load("velocity"));
  INFO("relative L2 error " << err);
  CHECK(err < 2e-3);
}

TEST_CASE("a wan-mini sample on CUDA matches the same sample on the CPU", "[gpu]") {
  if (skip_without_cuda()) return;
  SampleOptions o;
  o.frames = 4;
  o.height = 32;
  o.width = 32;
  o.steps = 4;
  o.seed = 3;
  o.context = torch::randn({16, 64}, torch::TensorOptions().dtype(torch::kFloat32));
  const torch::Tensor cpu = sample_video(model_on(torch::kCPU), o, dense());
  const torch::Tensor cuda = sample_video(model_on(torch::kCUDA), o, dense());
  const double err = relative_l2(cuda, cpu);
  INFO("relative L2 error " << err);
  CHECK(std::isfinite(err));
  // The bf16 rounding of q/k/v makes guided sampling chaotic at float32 ulp level (see
  // test_wan_model.cpp): the floor measured on the CPU alone is 1.4e-2 to 1.8e-2.
  CHECK(err < 5e-2);
}

TEST_CASE("block mass on CUDA equals block mass on the CPU", "[gpu]") {
  if (skip_without_cuda()) return;
  const Grid grid{4, 8, 8};
  BlockMassOptions options;
  options.block_size = 16;
  options.tiles = {{1, 4, 4}, {2, 2, 4}};
  const BlockMassComputer computer(grid, {}, options);
  torch::manual_seed(5);
  const torch::Tensor q = torch::randn({1, 256, 3, 128}), k = torch::randn({1, 256, 3, 128}),
                      v = torch::randn({1, 256, 3, 128});
  const AttentionWithMass cpu = computer(q, k, v);
  const AttentionWithMass cuda = computer(q.cuda(), k.cuda(), v.cuda());
  CHECK(relative_l2(cuda.out, cpu.out) < 1e-4);
  CHECK(relative_l2(cuda.lse, cpu.lse) < 1e-5);
  for (size_t t = 0; t < cpu.tiles.size(); ++t)
    CHECK((cuda.tiles[t].mass - cpu.tiles[t].mass).abs().max().item<double>() < 1e-4);
}

TEST_CASE("a sliding-tile plan runs on the CUDA kernels as the torch path runs it on the CPU", "[gpu]") {
  if (skip_without_cuda()) return;
  const ModelPreset preset = load_model_preset("wan-mini");
  BaselineOptions b;
  b.tile = {2, 4, 8};
  b.window = {3, 3, 1};
  const Plan plan = make_baseline_plan(preset, {8, 8, 8}, b);
  PlanBackend cpu_backend(plan);
  AttentionCall call;
  call.step = 20;
  call.layer = 1;
  call.grid = plan.grid;
  torch::manual_seed(9);
  const torch::Tensor q = torch::randn({1, 512, 3, 128}), k = torch::randn({1, 512, 3, 128}),
                      v = torch::randn({1, 512, 3, 128});
  const torch::Tensor cpu = cpu_backend(call, q, k, v);
  // Through the reorder pass (0), in the fused tile order (1), and with the calls in the
  // plan's tile-major order (2), as a runner whose token stream runs in it makes them.
  for (int way : {0, 1, 2}) {
    AttentionProfile profile(false, false);
    PlanRunOptions options;
    options.fused_max_density = way == 1 ? 1.0 : 0.0;
    options.profile = &profile;
    PlanBackend cuda_backend(plan, options);
    AttentionCall c = call;
    torch::Tensor rows = torch::arange(q.size(1), torch::kLong);
    if (way == 2) {
      c.token_order = cuda_backend.stream_order(torch::kCUDA);
      REQUIRE(c.token_order.defined());
      rows = c.token_order.cpu();
    }
    const auto in = [&](const torch::Tensor& x) { return x.index_select(1, rows).cuda(); };
    const torch::Tensor cuda = cuda_backend(c, in(q), in(k), in(v));
    REQUIRE(cuda.is_cuda());
    const double err = relative_l2(cuda.cpu(), cpu.index_select(1, rows));
    INFO("way " << way << ": relative L2 error " << err);
    CHECK(err < 1e-2);  // the kernels take bf16 inputs
    CHECK((profile.attention().reorder.calls == 0) == (way != 0));
  }
  CHECK_FALSE(relative_l2(cpu, dense_attention(q, k, v)) < 1e-3);  // the plan is really sparse
}

TEST_CASE("dense attention of the runner on CUDA runs the dense kernel and equals the CPU reference within bf16 tolerance", "[gpu]") {
  if (skip_without_kernels()) return;
  torch::manual_seed(21);
  // wan-mini's shape at 8 x 64 x 64 (4096 tokens) plus a length that is no multiple of a block.
  for (int64_t n : {4096, 1000}) {
    const torch::Tensor q = bf16_randn({1, n, 3, 128}, 1.5, 0.1),
                        k = bf16_randn({1, n, 3, 128}, 1.5, -0.1), v = bf16_randn({1, n, 3, 128}, 1.0, 0.3);
    const torch::Tensor cuda = q.cuda();
    REQUIRE(dense_kernel_runs(cuda, AttentionImpl::Kernels));
    const torch::Tensor out = run_dense_attention(cuda, k.cuda(), v.cuda(), AttentionImpl::Kernels);
    REQUIRE(out.is_cuda());
    REQUIRE(out.scalar_type() == torch::kFloat32);
    const double err = relative_l2(out.cpu(), dense_attention(q, k, v));
    INFO("tokens " << n << ": relative L2 error " << err);
    CHECK(err < 1e-2);
    CHECK(err > 0.0);  // bf16 output: the kernel ran, not the float32 path
  }
}

TEST_CASE("the wan-mini forward with the dense kernel on CUDA equals the float32 CPU reference within relative L2 1e-2", "[gpu]") {
  if (skip_without_kernels()) return;
  const SafetensorsFile ref(kModelDir + "/reference.safetensors");
  const torch::Device cuda(torch::kCUDA);
  const torch::Tensor kernels = model_on(cuda).forward(
      ref.load("x").to(cuda), ref.load("t").to(cuda), ref.load("context").to(cuda),
      dense_backend(AttentionImpl::Kernels));
  const torch::Tensor reference = model_on(torch::kCPU).forward(
      ref.load("x"), ref.load("t"), ref.load("context"), dense_backend(AttentionImpl::Reference));
  const double err = relative_l2(kernels.cpu(), reference);
  INFO("relative L2 error " << err);
  CHECK(err < 1e-2);
  CHECK(relative_l2(kernels.cpu(), ref.load("velocity")) < 1e-2);
}

TEST_CASE("a plan's dense steps on CUDA run the dense kernel and equal the CPU reference", "[gpu]") {
  if (skip_without_kernels()) return;
  const ModelPreset preset = load_model_preset("wan-mini");
  BaselineOptions b;
  b.tile = {2, 4, 8};
  b.window = {3, 3, 1};
  b.schedule.warmup_steps = 2;
  const Plan plan = make_baseline_plan(preset, {8, 8, 8}, b);
  PlanBackend backend(plan);
  AttentionCall call;
  call.step = 0;
  call.layer = 1;
  call.grid = plan.grid;
  REQUIRE(backend.runs_dense(call));
  torch::manual_seed(23);
  const torch::Tensor q = bf16_randn({1, 512, 3, 128}, 1.5, 0.1),
                      k = bf16_randn({1, 512, 3, 128}, 1.5, -0.1), v = bf16_randn({1, 512, 3, 128}, 1.0, 0.3);
  const torch::Tensor out = backend(call, q.cuda(), k.cuda(), v.cuda());
  const double err = relative_l2(out.cpu(), dense_attention(q, k, v));
  INFO("relative L2 error " << err);
  CHECK(err < 1e-2);
  CHECK(err > 0.0);
}

TEST_CASE("a residual_cache plan on the CUDA kernels equals its CPU run within bf16 tolerance", "[gpu]") {
  if (skip_without_kernels()) return;
  const ModelPreset preset = load_model_preset("wan-mini");
  BaselineOptions b;
  b.tile = {4, 4, 4};
  b.window = {3, 3, 1};
  b.schedule.warmup_steps = 1;
  Plan plan = make_baseline_plan(preset, {6, 10, 12}, b);  // partial tiles at the edges
  plan.compensation = Compensation::ResidualCache;
  // Through the reorder pass (0), in the fused tile order (1) and in the tile-major order (2),
  // the residual share included.
  for (int way : {0, 1, 2}) {
    PlanRunOptions options;
    options.fused_max_density = way == 1 ? 1.0 : 0.0;
    PlanBackend on_cuda(plan, options), on_cpu(plan);
    AttentionCall call;
    call.layer = 1;
    call.grid = plan.grid;
    const int64_t n = plan.grid.tokens();
    AttentionCall cuda_call = call;
    torch::Tensor rows = torch::arange(n, torch::kLong);
    if (way == 2) {
      cuda_call.token_order = on_cuda.stream_order(torch::kCUDA);
      rows = cuda_call.token_order.cpu();
    }
    torch::manual_seed(29);
    for (int step : {0, 1}) {
      call.step = cuda_call.step = step;
      const torch::Tensor q = bf16_randn({1, n, 3, 128}, 1.5, 0.1),
                          k = bf16_randn({1, n, 3, 128}, 1.5, -0.1),
                          v = bf16_randn({1, n, 3, 128}, 1.0, 0.3);
      const auto in = [&](const torch::Tensor& x) { return x.index_select(1, rows).cuda(); };
      const torch::Tensor want = on_cpu(call, q, k, v).index_select(1, rows);
      const torch::Tensor got = on_cuda(cuda_call, in(q), in(k), in(v)).cpu();
      REQUIRE_FALSE(torch::isnan(got).any().item<bool>());
      const double err = relative_l2(got, want);
      INFO("way " << way << ", step " << step << ": relative L2 error " << err);
      CHECK(err < 1e-2);
    }
    CHECK(on_cuda.stats().dense_calls == 1);
    CHECK(on_cuda.stats().sparse_calls == 1);
  }
}

TEST_CASE("a plan's sample with the token stream in its tile-major order equals the sample in model order on CUDA", "[gpu]") {
  if (skip_without_kernels()) return;
  const ModelPreset preset = load_model_preset("wan-mini");
  BaselineOptions b;
  b.tile = {4, 4, 4};
  b.window = {3, 3, 3};
  b.schedule.warmup_steps = 1;
  const Plan plan = make_baseline_plan(preset, {5, 18, 22}, b);  // partial tiles on every axis
  SampleOptions so;
  so.frames = 5, so.height = 72, so.width = 88;
  so.steps = 3;
  so.seed = 4;
  so.context = torch::randn({8, model_on(torch::kCUDA).config.text_dim});
  const WanModel& model = model_on(torch::kCUDA);
  REQUIRE(model.token_grid(so.frames, so.height, so.width) == plan.grid);
  AttentionProfile in_model(false, false), in_tiles(false, false);
  PlanBackend model_order(plan, PlanRunOptions{AttentionImpl::Kernels, &in_model, 0.0});
  PlanBackend tile_major(plan, PlanRunOptions{AttentionImpl::Kernels, &in_tiles, 0.0});
  const torch::Tensor want = sample_video(model, so, model_order.attention());
  so.token_order = tile_major.stream_order(torch::kCUDA);
  REQUIRE(so.token_order.defined());
  const torch::Tensor got = sample_video(model, so, tile_major.attention());
  REQUIRE_FALSE(torch::isnan(got).any().item<bool>());
  const double err = relative_l2(got, want);
  INFO("relative L2 error " << err);
  // The dense warm-up step sums its keys in another order, and guided sampling with bf16 q/k/v
  // is chaotic at that level (see "a wan-mini sample on CUDA matches the same sample on the
  // CPU"): measured 2.0e-2 here; a wrong tile or token gives far more.
  CHECK(err < 5e-2);
  CHECK(in_model.attention().reorder.calls > 0);
  CHECK(in_tiles.attention().reorder.calls == 0);
  CHECK(tile_major.stats().sparse_calls == model_order.stats().sparse_calls);
}

TEST_CASE("capture block mass from the CUDA kernels equals the CPU capture within 1e-4", "[gpu]") {
  if (skip_without_kernels()) return;
  // Partial tiles at every edge (5 x 10 x 12 in 4x4x4 and 2x4x8 tiles) and text tokens before
  // the video in a block of their own.
  const Grid grid{5, 10, 12};
  const TextLayout text{TextPosition::Before, 20};
  BlockMassOptions options;
  options.block_size = 64;
  options.tiles = {{4, 4, 4}, {2, 4, 8}};
  const BlockMassComputer computer(grid, text, options);
  const int64_t n = grid.tokens() + text.tokens;
  torch::manual_seed(25);
  const torch::Tensor q = bf16_randn({2, n, 3, 128}, 1.5, 0.1),
                      k = bf16_randn({2, n, 3, 128}, 1.5, -0.1), v = bf16_randn({2, n, 3, 128}, 1.0, 0.3);
  REQUIRE(computer.uses_kernels(q.cuda()));
  REQUIRE_FALSE(computer.uses_kernels(q));
  const AttentionWithMass cpu = computer(q, k, v);
  const AttentionWithMass cuda = computer(q.cuda(), k.cuda(), v.cuda());
  CHECK(relative_l2(cuda.out.cpu(), cpu.out) < 1e-2);
  CHECK((cuda.lse - cpu.lse).abs().max().item<double>() < 1e-3);
  REQUIRE(cuda.tiles.size() == cpu.tiles.size());
  for (size_t t = 0; t < cpu.tiles.size(); ++t) {
    const double mass_err = (cuda.tiles[t].mass - cpu.tiles[t].mass).abs().max().item<double>();
    INFO("tile " << t << ": block mass max abs difference " << mass_err);
    CHECK(mass_err < 1e-4);
    const torch::Tensor finite = torch::isfinite(cpu.tiles[t].lse_mean);
    CHECK(torch::equal(finite, torch::isfinite(cuda.tiles[t].lse_mean)));
    CHECK((cuda.tiles[t].lse_mean - cpu.tiles[t].lse_mean).masked_select(finite).abs().max()
              .item<double>() < 1e-3);
    CHECK((cuda.tiles[t].lse_min - cpu.tiles[t].lse_min).masked_select(finite).abs().max()
              .item<double>() < 1e-3);
    CHECK((cuda.tiles[t].lse_max - cpu.tiles[t].lse_max).masked_select(finite).abs().max()
              .item<double>() < 1e-3);
  }
}
