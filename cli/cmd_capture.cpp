#include <algorithm>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "io/capture_file.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/fidelity_setup.h"
#include "cli/progress_bar.h"
#include "base/atomic_file.h"
#include "runtime/capture_backend.h"
#include "runtime/dense_backend.h"
#include "model/flow_sampler.h"
#include "model/text_encoder.h"
#include "model/wan_config.h"
#include "model/wan_model.h"

namespace sparseplan::cli {
namespace {

std::vector<int> parse_int_list(const std::string& text, const char* option) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      throw std::invalid_argument(std::string(option) + ": '" + text +
                                  "' is not a comma-separated list of non-negative integers");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(std::string(option) + ": empty list");
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(std::string(option) + ": '" + text + "' lists a value twice");
  return out;
}

// A spread of `count` steps over [0, steps): always the first and the last.
std::vector<int> spread_steps(int steps, int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) {
    const int s = count == 1 ? 0 : int(std::lround(double(i) * (steps - 1) / (count - 1)));
    if (out.empty() || s != out.back()) out.push_back(s);
  }
  return out;
}

std::string model_id_of(const std::string& dir) {
  std::filesystem::path p(dir);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

struct Options {
  std::string model;
  std::vector<std::string> prompt;
  std::string prompts_file;
  std::string context_file;
  std::string out;
  std::vector<std::string> merge;
  int frames = 16, height = 64, width = 64, steps = 30;
  int64_t seed = 0;
  double shift = 3.0, guidance = 5.0;
  std::string capture_steps;
  std::string layers = "all";
  int block_size = 64;
  std::string tiles = "4x4x4,2x4x8,1x8x8";
  std::string branch = "cond";
  bool full_lse = false;
  std::string device = "cpu";
  std::string dtype = "float32";
  std::string attention = "kernels";
  std::string sinusoid = "float64";
  int64_t chunk_rows = 0;
};

int run_merge(const Options& o) {
  if (o.out.empty()) throw std::invalid_argument("--merge needs --out");
  if (!o.model.empty() || !o.prompt.empty() || !o.prompts_file.empty())
    throw std::invalid_argument("--merge takes capture files only (no --model or prompts)");
  if (o.merge.size() < 2) throw std::invalid_argument("--merge: give at least two captures");
  merge_captures(o.merge, o.out);
  const CaptureInfo info = read_capture_info(o.out);
  std::printf("merged %zu captures into %s: %d prompts\n", o.merge.size(), o.out.c_str(),
              info.num_prompts);
  return 0;
}

// Attention allocates and frees score buffers of 100 MB and more per call; by default glibc
// returns each to the kernel and faults it in again, which cost a third of a CPU capture's time.
void keep_freed_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, INT_MAX);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  mallopt(M_TOP_PAD, 512 << 20);
#endif
}

int run_capture(const Options& o) {
  // Every argument is checked before the model loads.
  if (o.model.empty()) throw std::invalid_argument("--model is required (or --merge)");
  if (o.out.empty()) throw std::invalid_argument("--out is required");
  const int prompt_sources =
      int(!o.prompt.empty()) + int(!o.prompts_file.empty()) + int(!o.context_file.empty());
  if (prompt_sources != 1)
    throw std::invalid_argument("give exactly one of --prompt, --prompts or --context");
  if (o.steps < 1) throw std::invalid_argument("--steps must be >= 1");
  if (!(o.shift > 0)) throw std::invalid_argument("--shift must be > 0");
  if (!(o.guidance >= 0)) throw std::invalid_argument("--guidance must be >= 0");
  if (o.block_size < 1) throw std::invalid_argument("--block-size must be >= 1");
  if (o.branch != "cond" && o.branch != "uncond")
    throw std::invalid_argument("--branch must be cond or uncond");
  if (o.branch == "uncond" && o.guidance == 1.0)
    throw std::invalid_argument("--branch uncond needs --guidance other than 1 (no "
                                "unconditional branch runs at guidance 1)");
  if (o.device != "cpu" && o.device != "cuda")
    throw std::invalid_argument("--device must be cpu or cuda");
  if (o.dtype != "float32" && o.dtype != "bfloat16" && o.dtype != "float16")
    throw std::invalid_argument("--dtype must be float32, bfloat16 or float16");
  if (o.chunk_rows < 0) throw std::invalid_argument("--chunk-rows must be >= 0");
  const AttentionImpl impl = parse_attention_impl(o.attention, "--attention");
  {
    const std::filesystem::path parent = std::filesystem::absolute(o.out).parent_path();
    if (!std::filesystem::is_directory(parent))
      throw std::invalid_argument("--out " + o.out + ": directory " + parent.string() +
                                  " does not exist");
  }
  if (!std::filesystem::is_directory(o.model))
    throw std::invalid_argument("--model " + o.model + ": not a directory");

  const std::string config_path = (std::filesystem::path(o.model) / "config.json").string();
  const WanConfig config = load_wan_config(config_path);
  const Grid grid = token_grid(config, o.frames, o.height, o.width);

  CaptureInfo info;
  info.model = ModelInfo{model_id_of(o.model), config.num_layers, config.num_heads,
                         config.head_dim()};
  info.grid = grid;
  info.block_size = o.block_size;
  std::stringstream tiles(o.tiles);
  for (std::string item; std::getline(tiles, item, ',');) {
    try {
      info.tiles.push_back(parse_tile_name(item));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--tiles: ") + e.what());
    }
  }
  if (info.tiles.empty()) throw std::invalid_argument("--tiles: no tile shape given");
  info.steps = o.capture_steps.empty() ? spread_steps(o.steps, std::min(o.steps, 5))
                                       : parse_int_list(o.capture_steps, "--capture-steps");
  if (info.steps.back() >= o.steps)
    throw std::invalid_argument("--capture-steps: step " + std::to_string(info.steps.back()) +
                                " is not below --steps " + std::to_string(o.steps));
  if (o.layers != "all") {
    info.layers = parse_int_list(o.layers, "--layers");
    if (info.layers.back() >= config.num_layers)
      throw std::invalid_argument("--layers: layer " + std::to_string(info.layers.back()) +
                                  " but the model has " + std::to_string(config.num_layers));
  }
  info.branch = o.branch == "cond" ? 0 : 1;

  std::vector<std::string> prompts;
  if (!o.prompt.empty()) prompts = o.prompt;
  if (!o.prompts_file.empty()) prompts = read_prompts_file(o.prompts_file);
  if (!o.context_file.empty()) prompts = {"context:" + o.context_file};
  info.num_prompts = int(prompts.size());
  info.prompts = prompts;
  for (int p = 0; p < info.num_prompts; ++p) info.seeds.push_back(o.seed + p);
  info.model_config_json = nlohmann::json::parse(read_text_file(config_path)).dump();
  const std::vector<double> sigmas = flow_sigmas(o.steps, o.shift);
  for (int s : info.steps) info.timesteps.push_back(1000.0 * sigmas[size_t(s)]);
  info.sampler_json = nlohmann::json{{"sampler", "flow_euler"},
                                     {"steps", o.steps},
                                     {"shift", o.shift},
                                     {"guidance", o.guidance},
                                     {"frames", o.frames},
                                     {"height", o.height},
                                     {"width", o.width},
                                     {"device", o.device},
                                     {"dtype", o.dtype},
                                     {"attention", o.attention}}
                          .dump();
  // Encode every prompt before the long part so an unknown word fails fast.
  std::vector<torch::Tensor> contexts;
  torch::Tensor negative;
  if (!o.context_file.empty()) {
    PrecomputedContext pc = load_precomputed_context(o.context_file, config.text_dim, config.text_len);
    contexts.push_back(pc.context);
    negative = pc.negative_context;
  } else {
    const std::string encoder_path =
        (std::filesystem::path(o.model) / "text_encoder.safetensors").string();
    if (!std::filesystem::exists(encoder_path))
      throw std::invalid_argument("--model " + o.model +
                                  ": no text_encoder.safetensors; give --context with "
                                  "precomputed embeddings instead");
    const ToyTextEncoder encoder(encoder_path, config.text_len);
    for (const std::string& prompt : prompts) contexts.push_back(encoder.encode(prompt));
  }

  CaptureWriter::Options wopts;
  wopts.full_lse = o.full_lse;
  CaptureWriter writer(o.out, info, wopts);  // validates tiles against the grid

  const torch::Device device = o.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: no CUDA device available");
  const torch::ScalarType dtype = o.dtype == "bfloat16" ? torch::kBFloat16
                                  : o.dtype == "float16" ? torch::kHalf
                                                         : torch::kFloat32;
  keep_freed_memory();
  WanModel model = load_wan_model(o.model, device, dtype);
  model.sinusoid_precision = sinusoid_precision(o.sinusoid);

  CaptureBackend backend(writer, o.chunk_rows, impl);
  const AttentionFn attention = backend.attention();

  const auto start = std::chrono::steady_clock::now();
  {
    ProgressBar bar("capture", int64_t(info.num_prompts) * o.steps);
    for (int p = 0; p < info.num_prompts; ++p) {
      backend.set_prompt(p);
      SampleOptions sopts;
      sopts.frames = o.frames;
      sopts.height = o.height;
      sopts.width = o.width;
      sopts.steps = o.steps;
      sopts.shift = o.shift;
      sopts.guidance = o.guidance;
      sopts.seed = uint64_t(info.seeds[size_t(p)]);
      sopts.context = contexts[size_t(p)];
      if (negative.defined()) sopts.negative_context = negative;
      sample_video(model, sopts, attention, [&](int, int) { bar.advance(); });
    }
    bar.finish();
  }
  if (backend.captured_calls() != backend.calls_per_prompt() * info.num_prompts)
    throw std::runtime_error("capture: " + std::to_string(backend.captured_calls()) +
                             " attention calls captured, expected " +
                             std::to_string(backend.calls_per_prompt() * info.num_prompts));
  writer.finish();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %d prompt%s x %zu steps x %zu layers x %d heads, grid %dx%dx%d, "
              "%zu tile shape%s, block %d (%.1f s, %.1f MB)\n",
              o.out.c_str(), info.num_prompts, info.num_prompts == 1 ? "" : "s",
              info.steps.size(), writer.info().layers.size(), info.model.heads, info.grid.frames,
              info.grid.height, info.grid.width, info.tiles.size(),
              info.tiles.size() == 1 ? "" : "s", info.block_size, secs,
              double(std::filesystem::file_size(o.out)) / 1e6);
  return 0;
}

}  // namespace

Command add_capture(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "capture",
      "Run a model densely and record per-head block attention mass and LSE statistics (HDF5)");
  sub->add_option("--model", o->model, "Checkpoint directory (config.json + safetensors)");
  // One quoted prompt per --prompt, so a prompt's words never become several prompts.
  sub->add_option("--prompt", o->prompt, "Prompt text (repeat for several prompts)")
      ->allow_extra_args(false);
  sub->add_option("--prompts", o->prompts_file, "File with one prompt per line (# comments)");
  sub->add_option("--context", o->context_file,
                  "Precomputed text embeddings (safetensors: context, negative_context)");
  sub->add_option("--out", o->out, "Capture file to write (HDF5)");
  sub->add_option("--merge", o->merge, "Concatenate these captures along prompts into --out");
  sub->add_option("--frames", o->frames, "Video frames")->capture_default_str();
  sub->add_option("--height", o->height, "Video height")->capture_default_str();
  sub->add_option("--width", o->width, "Video width")->capture_default_str();
  sub->add_option("--steps", o->steps, "Denoising steps")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the first prompt; prompt i uses seed + i")
      ->capture_default_str();
  sub->add_option("--shift", o->shift, "Timestep shift")->capture_default_str();
  sub->add_option("--guidance", o->guidance, "Classifier-free guidance scale")
      ->capture_default_str();
  sub->add_option("--capture-steps", o->capture_steps,
                  "Steps to capture, e.g. 0,7,14,21,29 (default: 5 spread over the steps)");
  sub->add_option("--layers", o->layers, "Layers to capture: all or e.g. 0,3,7")
      ->capture_default_str();
  sub->add_option("--block-size", o->block_size, "Tokens per block")->capture_default_str();
  sub->add_option("--tiles", o->tiles, "Tile shapes TFxTHxTW, comma-separated")
      ->capture_default_str();
  sub->add_option("--branch", o->branch, "Guidance branch to capture: cond or uncond")
      ->capture_default_str();
  sub->add_flag("--full-lse", o->full_lse, "Also store every token's LSE");
  sub->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Weights: float32, bfloat16 or float16")
      ->capture_default_str();
  add_sinusoid_option(sub, &o->sinusoid);
  sub->add_option("--attention", o->attention,
                  "kernels (dense and block-mass CUDA kernels on CUDA, float32 LibTorch on the "
                  "CPU) or reference (float32 LibTorch everywhere)")
      ->capture_default_str();
  sub->add_option("--chunk-rows", o->chunk_rows, "Query rows per block-mass chunk (0: auto)")
      ->capture_default_str();
  return {sub, [o]() { return o->merge.empty() ? run_capture(*o) : run_merge(*o); }};
}

}  // namespace sparseplan::cli
