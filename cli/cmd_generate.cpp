// sparseplan generate: sample a video with a Wan2.1-layout model and write it where people can
// look at it (animated GIF, PNG contact sheet) plus the raw tensor (safetensors).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "base/atomic_file.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/progress_bar.h"
#include "io/safetensors.h"
#include "io/video_writer.h"
#include "model/flow_sampler.h"
#include "model/text_encoder.h"
#include "model/wan_config.h"
#include "model/wan_model.h"
#include "plan/plan_loader.h"
#include "runtime/attention_profile.h"
#include "runtime/dense_backend.h"
#include "runtime/plan_backend.h"

namespace sparseplan::cli {
namespace {

namespace fs = std::filesystem;

// wan-mini is the default so that the README's main job runs without arguments beyond the
// prompt; SPARSEPLAN_MODEL points the default at a user's own checkpoint.
std::string default_model_dir() {
  if (const char* env = std::getenv("SPARSEPLAN_MODEL"); env && *env) return env;
  return std::string(SPARSEPLAN_SOURCE_DIR) + "/../shared/fixtures/wan-mini";
}

struct Options {
  std::string model = default_model_dir();
  std::string prompt;
  bool prompt_given = false;
  std::string negative_prompt;
  std::string context_file;
  std::string out;
  std::string plan;
  int frames = 16;
  int height = 64;
  int width = 64;
  int steps = 30;
  int64_t seed = 0;
  double shift = 3.0;
  double guidance = 5.0;
  std::string device = "cpu";
  std::string dtype = "float32";
  std::string attention = "kernels";
  std::string sinusoid = "float64";
  std::string token_order = "plan";
  std::string query_pairs = "plan";
  bool profile = false;
  int fps = 8;
  int scale = 4;
};

std::string describe(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

nlohmann::json timed_calls(const TimedCalls& t, bool timed) {
  nlohmann::json j{{"calls", t.calls}};
  j["seconds"] = timed ? nlohmann::json(t.seconds) : nlohmann::json(nullptr);
  return j;
}

// What was run and where its time went; seconds are null where they were not measured (CUDA
// without --profile).
nlohmann::json generate_json(const Options& o, double sampling_seconds,
                             const AttentionProfile& profile, const PlanBackend* plan,
                             bool tile_major) {
  const AttentionTimes& a = profile.attention();
  const bool timed = profile.timed();
  nlohmann::json j{{"model", o.model},
                   {"prompt", o.context_file.empty() ? o.prompt : "context:" + o.context_file},
                   {"frames", o.frames},
                   {"height", o.height},
                   {"width", o.width},
                   {"steps", o.steps},
                   {"seed", o.seed},
                   {"guidance", o.guidance},
                   {"device", o.device},
                   {"dtype", o.dtype},
                   {"attention", o.attention},
                   {"sinusoid", o.sinusoid},
                   {"plan", o.plan.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.plan)},
                   {"token_order", tile_major ? "tile-major" : "model"},
                   {"query_pairs", o.query_pairs},
                   {"sampling_seconds", sampling_seconds}};
  nlohmann::json p{{"timed", timed},
                   {"cuda_synchronized", profile.synchronizes()},
                   {"step_seconds", profile.step_seconds()},
                   {"dense", timed_calls(a.dense, timed)},
                   {"sparse", timed_calls(a.sparse, timed)},
                   {"reorder", timed_calls(a.reorder, timed)},
                   {"compensation", timed_calls(a.compensation, timed)},
                   {"selection", timed_calls(a.selection, timed)}};
  p["attention_seconds"] = timed ? nlohmann::json(a.attention_seconds()) : nlohmann::json(nullptr);
  const double sampling = profile.sampling_seconds();
  p["attention_share"] = timed && sampling > 0 ? nlohmann::json(a.attention_seconds() / sampling)
                                               : nlohmann::json(nullptr);
  j["profile"] = p;
  if (plan) {
    const PlanRunStats& s = plan->stats();
    j["plan_stats"] = {{"dense_calls", s.dense_calls},
                       {"sparse_calls", s.sparse_calls},
                       {"online_selections", s.reselections},
                       {"mean_sparse_density", s.mean_sparse_density()},
                       {"overall_density", s.mean_density()}};
  }
  return j;
}

int run_generate(const Options& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required (output directory)");
  if (fs::exists(o.out) && !fs::is_directory(o.out))
    throw std::invalid_argument("--out " + o.out + ": exists and is not a directory");
  if (!fs::is_directory(o.model))
    throw std::invalid_argument("--model " + o.model + ": not a directory");
  if (o.prompt_given == !o.context_file.empty())
    throw std::invalid_argument("give exactly one of --prompt and --context");
  if (o.steps < 1) throw std::invalid_argument("--steps must be >= 1");
  if (o.seed < 0) throw std::invalid_argument("--seed must be >= 0");
  if (!(o.shift > 0) || !std::isfinite(o.shift)) throw std::invalid_argument("--shift must be > 0");
  if (!(o.guidance >= 0) || !std::isfinite(o.guidance))
    throw std::invalid_argument("--guidance must be >= 0");

  const std::string config_path = (fs::path(o.model) / "config.json").string();
  const WanConfig config = load_wan_config(config_path);
  if (config.in_dim != 3 || config.out_dim != 3)
    throw std::invalid_argument("--model " + o.model + ": in_dim/out_dim " +
                                std::to_string(config.in_dim) + "/" +
                                std::to_string(config.out_dim) +
                                ": only pixel-space models (3 channels) can be written as video; "
                                "latent models need a VAE decoder");
  const Grid grid = token_grid(config, o.frames, o.height, o.width);

  // Text first: an unknown word fails before the model is loaded.
  SampleOptions so;
  so.frames = o.frames;
  so.height = o.height;
  so.width = o.width;
  so.steps = o.steps;
  so.shift = o.shift;
  so.guidance = o.guidance;
  so.seed = uint64_t(o.seed);
  if (!o.context_file.empty()) {
    if (!o.negative_prompt.empty())
      throw std::invalid_argument("--negative-prompt needs the toy text encoder; put "
                                  "negative_context in the --context file instead");
    const PrecomputedContext pc =
        load_precomputed_context(o.context_file, config.text_dim, config.text_len);
    so.context = pc.context;
    so.negative_context = pc.negative_context;
  } else {
    const std::string encoder_path = (fs::path(o.model) / "text_encoder.safetensors").string();
    if (!fs::exists(encoder_path))
      throw std::invalid_argument("--model " + o.model +
                                  ": no text_encoder.safetensors; give --context with "
                                  "precomputed embeddings instead");
    const ToyTextEncoder encoder(encoder_path, config.text_len);
    so.context = encoder.encode(o.prompt);
    if (!o.negative_prompt.empty()) so.negative_context = encoder.encode(o.negative_prompt);
  }

  const torch::Device device =
      o.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: no CUDA device available");
  const AttentionImpl impl = parse_attention_impl(o.attention, "--attention");
  const torch::ScalarType dtype = o.dtype == "bfloat16"  ? torch::kBFloat16
                                  : o.dtype == "float16" ? torch::kHalf
                                                         : torch::kFloat32;
  // The plan is checked against the model and grid before the weights are loaded.
  AttentionProfile profile = AttentionProfile::for_device(device, o.profile);
  std::unique_ptr<PlanBackend> plan;
  if (!o.plan.empty()) {
    PlanRunOptions run{impl, &profile};
    run.pair_query_blocks = o.query_pairs == "plan";
    plan = std::make_unique<PlanBackend>(load_plan(o.plan), run);
    const ModelInfo info{fs::path(o.model).filename().string(), config.num_layers,
                         config.num_heads, config.head_dim()};
    auto problems = check_plan_matches_model(plan->plan(), info);
    for (auto& e : check_plan_matches_grid(plan->plan(), grid, TextLayout{}))
      problems.push_back(std::move(e));
    if (!problems.empty()) {
      std::string text;
      for (const auto& e : problems) text += (text.empty() ? "" : "; ") + e;
      throw std::invalid_argument("--plan " + o.plan + ": " + text);
    }
  }
  WanModel model = load_wan_model(o.model, device, dtype);
  model.sinusoid_precision = sinusoid_precision(o.sinusoid);
  fs::create_directories(o.out);

  const AttentionFn attention = plan ? plan->attention() : dense_backend(impl, &profile);
  // Where the kernels attend tiles in place, the token stream runs in the plan's tile order and
  // sparse calls reorder nothing.
  if (plan && o.token_order == "plan") so.token_order = plan->stream_order(device);
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor video;
  {
    ProgressBar bar("generate", o.steps);
    profile.start_sampling(device);
    video = sample_video(model, so, attention, [&](int, int) {
      profile.step_done(device);
      bar.advance();
    });
    bar.finish();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string raw = (fs::path(o.out) / "video.safetensors").string();
  const std::string gif = (fs::path(o.out) / "video.gif").string();
  const std::string sheet = (fs::path(o.out) / "frames.png").string();
  write_safetensors(raw, {{"video", video}},
                    {{"layout", "[channels, frames, height, width], RGB in [-1, 1]"},
                     {"model", o.model},
                     {"prompt", o.context_file.empty() ? o.prompt : "context:" + o.context_file},
                     {"negative_prompt", o.negative_prompt},
                     {"seed", std::to_string(o.seed)},
                     {"steps", std::to_string(o.steps)},
                     {"shift", describe(o.shift)},
                     {"guidance", describe(o.guidance)},
                     {"sampler", "flow matching Euler"},
                     {"device", o.device},
                     {"dtype", o.dtype},
                     {"attention", o.attention},
                     {"sinusoid", o.sinusoid},
                     {"plan", o.plan},
                     {"tool", std::string("sparseplan ") + SPARSEPLAN_VERSION}});
  const VideoFrames frames = frames_from_video(video);
  write_gif(gif, frames, o.fps, o.scale);
  write_contact_sheet(sheet, frames, 8, std::max(1, o.scale / 2));
  std::printf("wrote %s, %s and %s: %d x %d x %d, %d steps, seed %lld (%.1f s sampling)\n",
              gif.c_str(), sheet.c_str(), raw.c_str(), o.frames, o.height, o.width, o.steps,
              static_cast<long long>(o.seed), secs);
  if (plan) std::printf("%s\n", format_plan_stats(plan->stats()).c_str());
  std::printf("%s", format_profile(profile).c_str());
  if (o.profile) {
    const auto& steps = profile.step_seconds();
    for (size_t i = 0; i < steps.size(); ++i) std::printf("  step %3zu %9.3f s\n", i, steps[i]);
  }
  const std::string json_path = (fs::path(o.out) / "generate.json").string();
  const nlohmann::json report =
      generate_json(o, secs, profile, plan.get(), so.token_order.defined());
  write_text_atomically(json_path, report.dump(2) + "\n");
  std::printf("wrote %s\n", json_path.c_str());
  return 0;
}

}  // namespace

Command add_generate(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "generate", "Sample a video with a Wan2.1-layout model (GIF, PNG contact sheet, tensor)");
  sub->add_option("--model", o->model,
                  "Checkpoint directory (config.json + safetensors); default wan-mini or "
                  "$SPARSEPLAN_MODEL")
      ->capture_default_str();
  sub->add_option_function<std::string>(
      "--prompt",
      [o](const std::string& text) {
        o->prompt = text;
        o->prompt_given = true;
      },
      "Prompt text (wan-mini: words from its vocabulary)");
  sub->add_option("--negative-prompt", o->negative_prompt,
                  "Prompt of the unconditional branch (default: empty)");
  sub->add_option("--context", o->context_file,
                  "Precomputed text embeddings (safetensors: context, optional negative_context)");
  sub->add_option("--out", o->out,
                  "Output directory (video.gif, frames.png, video.safetensors, generate.json)");
  sub->add_option("--plan", o->plan,
                  "Sparsity plan (JSON) to run self-attention with instead of dense attention");
  sub->add_option("--frames", o->frames, "Video frames")->capture_default_str();
  sub->add_option("--height", o->height, "Video height in pixels")->capture_default_str();
  sub->add_option("--width", o->width, "Video width in pixels")->capture_default_str();
  sub->add_option("--steps", o->steps, "Denoising steps")->capture_default_str();
  sub->add_option("--seed", o->seed, "Noise seed")->capture_default_str();
  sub->add_option("--shift", o->shift, "Timestep shift")->capture_default_str();
  sub->add_option("--guidance", o->guidance, "Classifier-free guidance scale (1: off)")
      ->capture_default_str();
  sub->add_option("--device", o->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Linear weights: float32, bfloat16 or float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}))
      ->capture_default_str();
  add_sinusoid_option(sub, &o->sinusoid);
  sub->add_option("--attention", o->attention,
                  "Self-attention: kernels (the CUDA kernels on CUDA, float32 LibTorch on the "
                  "CPU) or reference (float32 LibTorch everywhere)")
      ->check(CLI::IsMember({"kernels", "reference"}))
      ->capture_default_str();
  sub->add_option("--token-order", o->token_order,
                  "Order of the model's token stream under a plan: plan (its tile-major order "
                  "where the CUDA kernels attend tiles in place, so no call reorders) or model "
                  "(model order, each sparse call reorders; for comparison)")
      ->check(CLI::IsMember({"plan", "model"}))
      ->capture_default_str();
  sub->add_option("--query-pairs", o->query_pairs,
                  "Which 64-token query blocks share a tile of the CUDA kernels under a plan: "
                  "plan (the pairs whose key blocks overlap most, per head) or consecutive "
                  "(for comparison)")
      ->check(CLI::IsMember({"plan", "consecutive"}))
      ->capture_default_str();
  sub->add_flag("--profile", o->profile,
                "Time every attention call and step (on CUDA: synchronises around each) and "
                "print the per-step times");
  sub->add_option("--fps", o->fps, "GIF frames per second")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  sub->add_option("--scale", o->scale, "GIF pixel upscaling (the contact sheet uses half)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  return {sub, [o]() { return run_generate(*o); }};
}

}  // namespace sparseplan::cli
