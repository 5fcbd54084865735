// sparseplan calibrate: the cheapest plan whose videos keep a PSNR target against dense sampling
// on calibration prompts (or the best plan within an attention-time target), found by running
// the model (search/calibration.h) with captures ranking the candidates.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "analyzer/mass_source.h"
#include "cli/commands.h"
#include "cli/fidelity_setup.h"
#include "cli/progress_bar.h"
#include "plan/plan_writer.h"
#include "search/calibration.h"

namespace sparseplan::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  FidelitySettings fidelity;
  std::vector<std::string> captures;
  double target_psnr = -1.0;
  double target_time = -1.0;
  std::string recall_levels = "0.3,0.45,0.6,0.75,0.85,0.9,0.95,0.98";
  double reference_recall = 0.85;
  std::string warmups;
  int reselect_every = 5;
  std::string compensation = "residual_cache";
  std::string density_levels = "0.08,0.12,0.18,0.25,0.35";
  std::string refresh_every = "off,3,5,10";
  const CLI::Option* refresh_option = nullptr;  // given on the command line when count() > 0
  int max_verify = 5;
  std::string tile;
  int threads = 2;
  bool no_online = false;
  std::string out;
};

std::vector<double> parse_fractions(const std::string& text, const std::string& option) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || !(v > 0 && v <= 1))
      throw std::invalid_argument(option + ": '" + text +
                                  "' is not a comma-separated list of numbers in (0, 1]");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(option + ": empty list");
  return out;
}

int run_calibrate(const Options& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required (plan JSON to write)");
  if ((o.target_psnr > 0) == (o.target_time > 0))
    throw std::invalid_argument("give exactly one of --target-psnr DB and --target-time FRACTION");
  if (o.target_psnr > 0 && !(o.target_psnr < CalibrationInfo::kMaxPsnr))
    throw std::invalid_argument("--target-psnr must be below 200 dB");
  if (o.target_time > 1.0) throw std::invalid_argument("--target-time must be in (0, 1]");
  if (o.reselect_every < 1) throw std::invalid_argument("--reselect-every must be >= 1");
  if (o.max_verify < 1) throw std::invalid_argument("--max-verify must be >= 1");
  {
    const fs::path parent = fs::absolute(o.out).parent_path();
    if (!fs::is_directory(parent))
      throw std::invalid_argument("--out " + o.out + ": directory " + parent.string() +
                                  " does not exist");
  }
  CalibrationOptions co;
  co.target_psnr = o.target_psnr;
  co.target_time_fraction = o.target_time;
  co.steps = o.fidelity.steps;
  co.branches = o.fidelity.guidance == 1.0 ? 1 : 2;
  co.recall_levels = parse_fractions(o.recall_levels, "--recall-levels");
  co.density_levels = o.density_levels == "none"
                          ? std::vector<double>{}
                          : parse_fractions(o.density_levels, "--density-levels");
  co.reference_recall = o.reference_recall;
  if (!o.warmups.empty()) co.warmups = parse_count_list(o.warmups, "--warmups");
  for (int w : co.warmups)
    if (w >= co.steps)
      throw std::invalid_argument("--warmups: " + std::to_string(w) + " is not below --steps " +
                                  std::to_string(co.steps));
  co.reselect_every = o.reselect_every;
  co.compensation = o.compensation == "residual_cache" ? Compensation::ResidualCache
                    : o.compensation == "pooled_kv"    ? Compensation::PooledKV
                                                       : Compensation::None;
  if (co.compensation != Compensation::ResidualCache && o.refresh_option->count() > 0)
    throw std::invalid_argument("--refresh-every needs --compensation residual_cache (it is " +
                                o.compensation + ")");
  if (co.compensation == Compensation::ResidualCache) {
    std::stringstream ss(o.refresh_every);
    for (std::string item; std::getline(ss, item, ',');)
      co.refresh_every.push_back(item == "off" ? CalibrationOptions::kNoCache
                                               : parse_count_list(item, "--refresh-every")[0]);
  }
  co.max_verify = o.max_verify;
  if (!o.tile.empty()) co.search.tiles = {parse_tile_name(o.tile)};
  co.search.threads = o.threads;
  co.search.allow_online = !o.no_online;

  const CaptureSet source(o.captures);
  FidelitySetup setup = make_fidelity_setup(o.fidelity);
  const SourceInfo& info = source.info();
  const ModelInfo& m = setup.model_info;
  if (info.model.layers != m.layers || info.model.heads != m.heads ||
      info.model.head_dim != m.head_dim)
    throw std::invalid_argument(
        "captures " + info.captures.front() + ": model has " + std::to_string(info.model.layers) +
        " layers x " + std::to_string(info.model.heads) + " heads (head_dim " +
        std::to_string(info.model.head_dim) + "), --model " + o.fidelity.model + " has " +
        std::to_string(m.layers) + " x " + std::to_string(m.heads) + " (" +
        std::to_string(m.head_dim) + ")");
  if (!(info.grid == setup.grid))
    throw std::invalid_argument(
        "captures " + info.captures.front() + ": token grid " + std::to_string(info.grid.frames) +
        "x" + std::to_string(info.grid.height) + "x" + std::to_string(info.grid.width) +
        ", but --video " + o.fidelity.video + " gives " + std::to_string(setup.grid.frames) + "x" +
        std::to_string(setup.grid.height) + "x" + std::to_string(setup.grid.width));

  FidelityRunner& runner = *setup.runner;
  // Every trial is a result (what was run and what it reached), kept under --quiet too.
  co.log = [](const std::string& line) { std::cout << line << std::endl; };
  const FidelityResult& dense = runner.dense();
  const PlanEvaluator evaluate = [&](const Plan& plan) {
    const FidelityResult r = runner.run_plan(plan);
    CalibrationScore s;
    s.psnr_mean = r.psnr_mean;
    s.psnr_worst = r.psnr_worst;
    s.time_fraction = dense.predicted_ms > 0 ? r.predicted_ms / dense.predicted_ms : 0.0;
    s.density = r.density();
    return s;
  };
  CalibrationResult result = calibrate_plan(source, co, evaluate);
  CalibrationInfo& cal = *result.plan.search->calibration;
  cal.prompts = setup.prompts;
  cal.seeds = setup.seeds;
  cal.video = setup.video;
  cal.guidance = o.fidelity.guidance;
  result.plan.model.id = m.id;
  write_plan(o.out, result.plan);
  std::printf("%d model runs of %zu videos each (+1 dense)\n", result.model_runs,
              runner.cases().size());
  if (!result.met) {
    std::cerr << result.message << "; the best found is written to " << o.out << "\n";
    return 2;
  }
  std::printf("wrote %s: %s\n", o.out.c_str(), result.plan.description.c_str());
  return 0;
}

}  // namespace

Command add_calibrate(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "calibrate",
      "Search the cheapest plan keeping a PSNR target against dense sampling on calibration "
      "prompts (or the best within an attention-time target), running the model");
  sub->add_option("captures", o->captures, "Capture files of the same model and grid (rank the "
                                            "candidates)")
      ->required();
  add_fidelity_options(sub, o->fidelity);
  sub->add_option("--target-psnr", o->target_psnr, "Mean PSNR (dB) against dense to keep");
  sub->add_option("--target-time", o->target_time,
                  "Predicted attention time as a fraction of dense (speed target)");
  sub->add_option("--recall-levels", o->recall_levels, "Recall ladder of the per-layer rules")
      ->capture_default_str();
  sub->add_option("--reference-recall", o->reference_recall,
                  "Recall level the layer sensitivities are measured at")
      ->capture_default_str();
  sub->add_option("--warmups", o->warmups,
                  "Dense warm-up candidates, e.g. 0,3,6,9 (default: 0, 10, 20, 30% of steps)");
  sub->add_option("--reselect-every", o->reselect_every,
                  "Online heads re-select every this many steps")
      ->capture_default_str();
  sub->add_option("--compensation", o->compensation,
                  "What the plans do about dropped blocks (docs/plan-format.md)")
      ->check(CLI::IsMember({"none", "pooled_kv", "residual_cache"}))
      ->capture_default_str();
  sub->add_option("--density-levels", o->density_levels,
                  "Mean-density ladder of the per-layer rules, sparser than the recall ladder "
                  "(none: recall levels only)")
      ->capture_default_str();
  o->refresh_option = sub->add_option("--refresh-every", o->refresh_every,
                  "With residual_cache: candidate refresh intervals, a dense refresh step every "
                  "K steps after the warm-up (0: only the last warm-up step refreshes; off: "
                  "plans without the cache)")
      ->capture_default_str();
  sub->add_option("--max-verify", o->max_verify, "Model runs of allocated candidates")
      ->capture_default_str();
  sub->add_option("--tile", o->tile, "Tile shape (e.g. 4x4x4); default: the search's choice");
  sub->add_option("--threads", o->threads, "Search threads")->capture_default_str();
  sub->add_flag("--no-online", o->no_online, "Never choose online selection");
  sub->add_option("--out", o->out, "Plan JSON to write");
  return {sub, [o]() { return run_calibrate(*o); }};
}

}  // namespace sparseplan::cli
