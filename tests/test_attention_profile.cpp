// The generation profile: what the dense backend books, when times are measured, and the
// summary a user reads at the end of a run.
#include <string>

#include <torch/types.h>
#include <torch/utils.h>

#include "runtime/attention_profile.h"
#include "runtime/dense_backend.h"
#include "tensor_checks.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

using namespace sparseplan;

TEST_CASE("a run without a plan books every self-attention call as dense with its time") {
  AttentionProfile profile(/*timed=*/true, /*synchronize=*/false);
  const AttentionFn attention = dense_backend(AttentionImpl::Kernels, &profile);
  torch::manual_seed(1);
  const torch::Tensor q = torch::randn({1, 96, 2, 16}), k = torch::randn({1, 96, 2, 16}),
                      v = torch::randn({1, 96, 2, 16});
  for (int i = 0; i < 3; ++i) {
    const torch::Tensor out = attention(AttentionCall{}, q, k, v);
    CHECK(relative_l2(out, dense_attention(q, k, v)) < 1e-6);  // the CPU runs the reference
  }
  CHECK(profile.attention().dense.calls == 3);
  CHECK(profile.attention().dense.seconds > 0);
  CHECK(profile.attention().sparse.calls == 0);
}

TEST_CASE("attention on CUDA is timed only when profiling, on the CPU always") {
  const AttentionProfile cpu = AttentionProfile::for_device(torch::kCPU, false);
  CHECK(cpu.timed());
  CHECK_FALSE(cpu.synchronizes());
  const AttentionProfile cuda = AttentionProfile::for_device(torch::Device(torch::kCUDA, 0), false);
  CHECK_FALSE(cuda.timed());
  const AttentionProfile profiled =
      AttentionProfile::for_device(torch::Device(torch::kCUDA, 0), true);
  CHECK(profiled.timed());
  CHECK(profiled.synchronizes());
}

TEST_CASE("an untimed profile still counts calls and says that it did not time them") {
  AttentionProfile profile(/*timed=*/false, /*synchronize=*/false);
  profile.time(AttentionProfile::Part::Dense, torch::kCPU, [] { return 0; });
  CHECK(profile.attention().dense.calls == 1);
  CHECK(profile.attention().dense.seconds == 0.0);
  const std::string text = format_profile(profile);
  CHECK_THAT(text, Catch::Contains("not timed"));
  CHECK_THAT(text, Catch::Contains("dense: 1 calls"));
}

TEST_CASE("the summary gives the steps, the attention share and the calls with their time") {
  AttentionProfile profile(/*timed=*/true, /*synchronize=*/false);
  profile.start_sampling(torch::kCPU);
  const torch::Tensor a = torch::randn({256, 256});
  for (int step = 0; step < 2; ++step) {
    profile.time(AttentionProfile::Part::Dense, torch::kCPU, [&] { return torch::mm(a, a); });
    profile.time(AttentionProfile::Part::Sparse, torch::kCPU, [&] {
      profile.time(AttentionProfile::Part::Reorder, torch::kCPU, [&] { return a.flip(0); });
      return torch::mm(a, a);
    });
    profile.step_done(torch::kCPU);
  }
  REQUIRE(profile.step_seconds().size() == 2);
  CHECK(profile.attention().attention_seconds() <= profile.sampling_seconds());
  const std::string text = format_profile(profile);
  CHECK_THAT(text, Catch::Contains("2 steps"));
  CHECK_THAT(text, Catch::Contains("self-attention"));
  CHECK_THAT(text, Catch::Contains("dense: 2 calls"));
  CHECK_THAT(text, Catch::Contains("sparse: 2 calls"));
  CHECK_THAT(text, Catch::Contains("reorder: 2 calls"));
  CHECK_THAT(text, Catch::Contains("of the sparse calls' time"));
}
