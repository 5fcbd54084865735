#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "plan/limits.h"
#include "plan/model_preset.h"
#include "analyzer/synthetic_capture.h"

namespace sparseplan::cli {

Command add_synth_capture(CLI::App& app) {
  struct Options {
    std::string out;
    std::string grid = "16x32x64";
    std::vector<std::string> tiles{"4x4x4"};
    int layers = 30;
    int heads = 12;
    int prompts = 2;
    int first_prompt = 0;
    int steps = 4;
    int block_size = 64;
    uint64_t seed = 1;
    std::string model = "synthetic";
    std::vector<std::string> patterns;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "synth-capture", "Write a synthetic capture with planted head patterns (tests, benchmarks)");
  sub->add_option("--out", o->out, "Capture file to write")->required();
  sub->add_option("--grid", o->grid, "Token grid FxHxW")->capture_default_str();
  sub->add_option("--tile", o->tiles, "Tile shape (repeatable)")->capture_default_str();
  sub->add_option("--layers", o->layers, "Layers")->capture_default_str();
  sub->add_option("--heads", o->heads, "Heads per layer")->capture_default_str();
  sub->add_option("--prompts", o->prompts, "Prompts")->capture_default_str();
  sub->add_option("--first-prompt", o->first_prompt,
                  "Number of the first prompt (held-out captures use other numbers)")->capture_default_str();
  sub->add_option("--steps", o->steps, "Captured steps per prompt")->capture_default_str();
  sub->add_option("--block-size", o->block_size, "Tokens per block")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the synthetic model (head patterns)")->capture_default_str();
  sub->add_option("--model", o->model, "Model id recorded in the capture")->capture_default_str();
  sub->add_option("--pattern", o->patterns,
                  "Planted pattern of every head, cycled over heads: local, spatial, temporal, "
                  "cross, sink, global, diffuse, per-prompt (default: a realistic mix)");
  sub->add_flag("--quiet", o->quiet, "No progress bar");
  return {sub, [o]() {
            if (o->layers <= 0 || o->heads <= 0 || o->prompts <= 0 || o->steps <= 0)
              throw std::invalid_argument("--layers, --heads, --prompts and --steps must be positive");
            check_model_shape(o->layers, o->heads, 64, "--");
            SyntheticSpec spec;
            spec.model = ModelInfo{o->model, o->layers, o->heads, 64};
            spec.grid = parse_grid(o->grid);
            spec.tiles.clear();
            for (const std::string& t : o->tiles) spec.tiles.push_back(parse_tile_name(t));
            spec.block_size = o->block_size;
            spec.prompts = o->prompts;
            spec.first_prompt = o->first_prompt;
            spec.steps = o->steps;
            spec.seed = o->seed;
            if (!o->patterns.empty()) {
              std::vector<PlantedPattern> cycle;
              for (const std::string& p : o->patterns) cycle.push_back(parse_planted_pattern(p));
              const SyntheticSpec mix = spec;  // widths of the default mix, patterns overridden
              spec.heads.assign(size_t(o->layers), {});
              for (int l = 0; l < o->layers; ++l)
                for (int h = 0; h < o->heads; ++h) {
                  PlantedHead head = planted_head(mix, l, h);
                  head.pattern = cycle[size_t(l * o->heads + h) % cycle.size()];
                  spec.heads[size_t(l)].push_back(head);
                }
            }
            std::unique_ptr<ProgressBar> bar;
            if (!o->quiet)
              bar = std::make_unique<ProgressBar>(
                  "synth", int64_t(spec.tiles.size()) * o->layers * o->heads);
            write_synthetic_capture(o->out, spec, [&] {
              if (bar) bar->advance();
            });
            if (bar) bar->finish();
            std::cout << "wrote " << o->out << "\n";
            return 0;
          }};
}

}  // namespace sparseplan::cli
