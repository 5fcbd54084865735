#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "plan/model_preset.h"
#include "plan/plan_writer.h"
#include "search/baseline_plans.h"

namespace sparseplan::cli {
namespace {

template <size_t N>
std::array<int, N> parse_ints(const std::string& text, const char* option) {
  std::array<int, N> out{};
  std::stringstream ss(text);
  std::string part;
  size_t i = 0;
  while (std::getline(ss, part, text.find('x') != std::string::npos ? 'x' : ',')) {
    if (i == N) break;
    try {
      size_t used = 0;
      out[i] = std::stoi(part, &used);
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string(option) + " '" + text + "': expected " +
                                  std::to_string(N) + " integers");
    }
    ++i;
  }
  if (i != N || std::getline(ss, part))
    throw std::invalid_argument(std::string(option) + " '" + text + "': expected " +
                                std::to_string(N) + " integers");
  return out;
}

}  // namespace

Command add_baseline(CLI::App& app) {
  struct Options {
    std::string kind = "sliding-tile";
    std::string model = "wan2.1-1.3b";
    std::string grid = "480p-81f";
    std::string tile = "4,4,4";
    std::string window = "3,3,3";
    std::string radial_base = "0,0";
    int block_size = 64;
    int steps = 50;
    int warmup = 10;
    std::string out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "baseline", "Write a fixed-pattern plan (sliding tile, radial, spatial/temporal heads)");
  sub->add_option("--kind", o->kind, "sliding-tile | radial | spatial-temporal")->capture_default_str();
  sub->add_option("--model", o->model, "Model preset name or preset JSON")->capture_default_str();
  sub->add_option("--grid", o->grid, "Token grid F,H,W or a resolution of the preset")->capture_default_str();
  sub->add_option("--tile", o->tile, "Tile shape tf,th,tw in tokens")->capture_default_str();
  sub->add_option("--window", o->window, "Sliding tile window in tiles (f,h,w)")->capture_default_str();
  sub->add_option("--radial-base", o->radial_base,
                  "Radial window (h,w) in tiles at frame distance <= 1 (0 = whole frame)")->capture_default_str();
  sub->add_option("--block-size", o->block_size, "Tokens per block")->capture_default_str();
  sub->add_option("--steps", o->steps, "Denoising steps of the schedule")->capture_default_str();
  sub->add_option("--warmup", o->warmup, "Dense warm-up steps")->capture_default_str();
  sub->add_option("--out", o->out, "Plan JSON to write")->required();
  return {sub, [o]() {
            const ModelPreset preset = load_model_preset(o->model);
            BaselineOptions b;
            b.kind = parse_baseline_kind(o->kind);
            b.tile = parse_ints<3>(o->tile, "--tile");
            b.window = parse_ints<3>(o->window, "--window");
            b.radial_base = parse_ints<2>(o->radial_base, "--radial-base");
            b.block_size = o->block_size;
            if (o->steps < 0 || o->warmup < 0 || o->warmup > o->steps)
              throw std::invalid_argument("--warmup must be in [0, --steps]");
            b.schedule.total_steps = o->steps;
            b.schedule.warmup_steps = o->warmup;
            const Plan plan = make_baseline_plan(preset, resolve_grid(preset, o->grid), b);
            write_plan(o->out, plan);
            std::cout << "wrote " << o->out << ": " << plan.description << "\n";
            return 0;
          }};
}

}  // namespace sparseplan::cli
