// Writes the seed inputs of fuzz/corpus/ with the project's own writers, so the seeds are
// exactly what the readers get from real use: small plans of every rule kind, safetensors files
// of every dtype, and capture files with and without LSE datasets and text tokens.
// Usage: make_seeds CORPUS_DIR (writes CORPUS_DIR/{plan,safetensors,capture}/).
#include <array>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <torch/utils.h>

#include "base/atomic_file.h"
#include "io/capture_file.h"
#include "io/safetensors.h"
#include "plan/plan_loader.h"
#include "plan/plan_writer.h"
#include "plan/tile_geometry.h"

namespace {

using namespace sparseplan;
namespace fs = std::filesystem;

HeadRule window_rule() {
  HeadRule r;
  r.kind = RuleKind::Window;
  r.window.groups = {{0, 3, 3}, {2, 1, 1}};
  r.window.sink_frames = {0};
  r.window.global_blocks = {1};
  r.stats = HeadStats{0.93, 0.4};
  return r;
}

HeadRule online_rule() {
  HeadRule r;
  r.kind = RuleKind::Online;
  r.online = {0.9, 0.1, 0.6};
  return r;
}

// A blocks rule whose row q attends to key blocks q-1, q (and 0, the sink).
HeadRule blocks_rule(int video_blocks) {
  HeadRule r;
  r.kind = RuleKind::Blocks;
  for (int q = 0; q < video_blocks; ++q) {
    std::vector<int32_t> row = {0};
    if (q > 1) row.push_back(q - 1);
    if (q > 0) row.push_back(q);
    r.blocks.rows.push_back(row);
  }
  return r;
}

Plan small_plan(TextPosition position, int text_tokens) {
  Plan p;
  p.model = {"fuzz-mini", 2, 2, 16};
  p.grid = {3, 12, 12};
  p.text = {position, text_tokens};
  p.block_size = 16;
  p.tile = {1, 4, 4};
  p.schedule = {10, 2, {5}, {2, 6}};
  p.description = "fuzz seed";
  return p;
}

void write_plans(const fs::path& dir) {
  std::vector<Plan> plans;
  Plan mixed = small_plan(TextPosition::None, 0);
  mixed.layers = {{window_rule(), HeadRule{}},
                  {online_rule(), blocks_rule(make_tile_geometry(mixed).video_blocks)}};
  SearchInfo search;
  search.target_recall = 0.95;
  search.tool = "sparseplan fuzz";
  search.captures = {"run.h5"};
  mixed.search = search;
  plans.push_back(mixed);
  Plan before = small_plan(TextPosition::Before, 20);
  before.layers = {{window_rule(), window_rule()}, {HeadRule{}, online_rule()}};
  plans.push_back(before);
  Plan after = small_plan(TextPosition::After, 7);
  after.tile = {2, 3, 5};
  after.block_size = 32;
  after.layers = {{blocks_rule(make_tile_geometry(after).video_blocks), HeadRule{}},
                  {HeadRule{}, HeadRule{}}};
  plans.push_back(after);
  for (size_t i = 0; i < plans.size(); ++i) {
    const std::string text = plan_to_text(plans[i]);
    plan_from_json_text(text, "seed");  // a seed that does not load would test nothing
    write_text_atomically((dir / ("small-" + std::to_string(i) + ".json")).string(), text);
  }
}

void write_checkpoints(const fs::path& dir) {
  torch::manual_seed(1);
  write_safetensors((dir / "f32.safetensors").string(),
                    {{"blocks.0.weight", torch::randn({4, 3})}, {"bias", torch::randn({3})}},
                    {{"format", "pt"}});
  write_safetensors((dir / "bf16-f16.safetensors").string(),
                    {{"a", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                     {"b", torch::randn({5}).to(torch::kHalf)},
                     {"empty", torch::zeros({0, 4})},
                     {"scalar", torch::tensor(1.5f)}});
}

void write_captures(const fs::path& dir) {
  struct Variant {
    const char* name;
    TextLayout text;
    std::vector<std::array<int, 3>> tiles;
    CaptureWriter::Options options;
    std::vector<int> layers;
  };
  const std::vector<Variant> variants = {
      {"stats", {TextPosition::None, 0}, {{1, 4, 4}}, {true, false, 0}, {}},
      {"two-tiles-text", {TextPosition::Before, 10}, {{1, 4, 4}, {2, 2, 4}}, {false, false, 0},
       {1}},
      {"full-lse-gzip", {TextPosition::After, 5}, {{2, 4, 4}}, {true, true, 6}, {}},
  };
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(0.01f, 1.0f);
  for (const Variant& v : variants) {
    CaptureInfo info;
    info.model = {"fuzz-mini", 2, 2, 16};
    info.grid = {2, 4, 8};
    info.text = v.text;
    info.block_size = 16;
    info.tiles = v.tiles;
    info.num_prompts = 2;
    info.prompts = {"a red fox", "rain on a window"};
    info.seeds = {1, 2};
    info.steps = {0, 3};
    info.layers = v.layers;
    info.timesteps = {999.0, 700.5};
    info.sampler_json = R"({"steps":4,"shift":3.0})";
    const std::string path = (dir / (std::string(v.name) + ".h5")).string();
    CaptureWriter writer(path, info, v.options);
    const CaptureInfo& written = writer.info();
    for (const auto& tile : written.tiles) {
      const int nb = capture_num_blocks(written, tile);
      const size_t n = size_t(nb);
      std::vector<float> mass(n * n), mean(n), lo(n), hi(n);
      for (int p = 0; p < written.num_prompts; ++p)
        for (int s = 0; s < int(written.steps.size()); ++s)
          for (int layer : written.layers)
            for (int head = 0; head < written.model.heads; ++head) {
              for (int q = 0; q < nb; ++q) {
                float sum = 0;
                for (int k = 0; k < nb; ++k) sum += mass[size_t(q * nb + k)] = uniform(rng);
                for (int k = 0; k < nb; ++k) mass[size_t(q * nb + k)] /= sum;
                mean[size_t(q)] = uniform(rng);
                lo[size_t(q)] = mean[size_t(q)] - 1;
                hi[size_t(q)] = mean[size_t(q)] + 1;
              }
              writer.write_head_mass(tile, p, s, layer, head, mass.data());
              if (v.options.lse_stats)
                writer.write_lse_stats(tile, p, s, layer, head, mean.data(), lo.data(),
                                       hi.data());
            }
    }
    if (v.options.full_lse) {
      std::vector<float> lse(size_t(written.grid.tokens() + written.text.tokens));
      for (float& x : lse) x = uniform(rng);
      for (int p = 0; p < written.num_prompts; ++p)
        for (int s = 0; s < int(written.steps.size()); ++s)
          for (int layer : written.layers)
            for (int head = 0; head < written.model.heads; ++head)
              writer.write_full_lse(p, s, layer, head, lse.data());
    }
    writer.finish();
    CaptureReader reader(path);  // a seed that does not read would test nothing
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* parser : {"plan", "safetensors", "capture"}) fs::create_directories(root / parser);
  write_plans(root / "plan");
  write_checkpoints(root / "safetensors");
  write_captures(root / "capture");
  return 0;
}
