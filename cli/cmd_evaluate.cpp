// sparseplan evaluate: how close videos made with plans stay to dense sampling from the same
// noise (PSNR, SSIM, relative L2), at what overall attention density and attention time.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/fidelity_setup.h"
#include "cli/progress_bar.h"
#include "plan/cost_model.h"
#include "plan/plan_loader.h"

namespace sparseplan::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  FidelitySettings fidelity;
  std::vector<std::string> plans;
  std::vector<std::string> names;
  std::string warmups;
  bool floor = false;
  std::string out;
};

std::string plan_name(const std::string& path) { return fs::path(path).stem().string(); }

int run_evaluate(const Options& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required (output directory)");
  if (fs::exists(o.out) && !fs::is_directory(o.out))
    throw std::invalid_argument("--out " + o.out + ": exists and is not a directory");
  if (o.plans.empty() && !o.floor)
    throw std::invalid_argument("give at least one plan (or --floor)");
  if (!o.names.empty() && o.names.size() != o.plans.size())
    throw std::invalid_argument("--name: give one name per plan (" +
                                std::to_string(o.plans.size()) + " plans, " +
                                std::to_string(o.names.size()) + " names)");
  std::vector<int> warmups;
  if (!o.warmups.empty()) warmups = parse_count_list(o.warmups, "--warmup");
  for (int w : warmups)
    if (w >= o.fidelity.steps)
      throw std::invalid_argument("--warmup " + std::to_string(w) + ": not below --steps " +
                                  std::to_string(o.fidelity.steps));

  // Plans are read before the model loads, and checked against it before anything runs.
  std::vector<Plan> plans;
  for (const std::string& p : o.plans) plans.push_back(load_plan(p));
  FidelitySetup setup = make_fidelity_setup(o.fidelity);
  FidelityRunner& runner = *setup.runner;
  for (size_t i = 0; i < plans.size(); ++i) runner.check_plan(plans[i], o.plans[i]);

  struct Job {
    std::string name;
    Plan plan;
    int warmup;
  };
  std::vector<Job> jobs;
  for (size_t i = 0; i < plans.size(); ++i) {
    const std::string name = o.names.empty() ? plan_name(o.plans[i]) : o.names[i];
    if (warmups.empty()) {
      jobs.push_back({name, plans[i], plans[i].schedule.warmup_steps});
      continue;
    }
    for (int w : warmups) {
      Plan p = plans[i];
      p.schedule.warmup_steps = w;
      jobs.push_back({name + "+w" + std::to_string(w), p, w});
    }
  }
  const int64_t runs_per_set = int64_t(runner.cases().size()) * o.fidelity.steps;
  std::unique_ptr<ProgressBar> bar;
  if (!o.fidelity.quiet)
    bar = std::make_unique<ProgressBar>(
        "evaluate", runs_per_set * int64_t(1 + jobs.size() + (o.floor ? 1 : 0)));
  runner.on_step = [&] {
    if (bar) bar->advance();
  };

  fs::create_directories(o.out);
  std::vector<EvaluationRow> rows;
  const FidelityResult& dense = runner.dense();
  rows.push_back({"dense", "dense", -1, dense, 1.0});
  if (o.floor) {
    const WanModel bf16 =
        load_wan_model(o.fidelity.model, fidelity_device(o.fidelity.device), torch::kBFloat16);
    FidelityResult floor = runner.run_dense_model(bf16);
    rows.push_back({"floor-bf16-weights", "floor", -1, floor, 1.0});
  }
  for (const Job& job : jobs) {
    FidelityResult r = runner.run_plan(job.plan);
    const double fraction = dense.predicted_ms > 0 ? r.predicted_ms / dense.predicted_ms : 0.0;
    write_side_by_side((fs::path(o.out) / ("compare-" + job.name)).string(),
                       dense.runs.front().video, r.runs.front().video);
    rows.push_back({job.name, "plan", job.warmup, std::move(r), fraction});
  }
  if (bar) bar->finish();
  char settings[512];
  std::snprintf(settings, sizeof settings,
                "%s, video %dx%dx%d (token grid %dx%dx%d), %d steps, guidance %g, %zu prompts x "
                "%zu seeds, device %s; PSNR of the final video against dense sampling from the "
                "same noise (peak-to-peak 2), SSIM 11x11 Gaussian per frame; density counts "
                "dense calls as 1",
                setup.model_info.id.c_str(), setup.video[0], setup.video[1], setup.video[2],
                setup.grid.frames, setup.grid.height, setup.grid.width, o.fidelity.steps,
                o.fidelity.guidance, setup.prompts.size(), setup.seeds.size(),
                o.fidelity.device.c_str());
  write_evaluation_tables(o.out, rows, settings);
  std::cout << settings << "\n\n" << evaluation_text_table(rows);
  std::cout << "wrote " << (fs::path(o.out) / "results.{txt,md,html,json,csv}").string()
            << " and compare-*.gif/png\n";
  return 0;
}

}  // namespace

Command add_evaluate(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "evaluate", "Generate densely and with plans from the same noise; PSNR/SSIM of the videos, "
                  "attention density and time");
  sub->add_option("plans", o->plans, "Plan JSON files");
  add_fidelity_options(sub, o->fidelity);
  sub->add_option("--name", o->names, "Row name of each plan (default: file name)");
  sub->add_option("--warmup", o->warmups,
                  "Run every plan with each of these dense warm-up step counts, e.g. 0,3,6 "
                  "(default: the plan's own)");
  sub->add_flag("--floor", o->floor,
                "Also run dense with bf16 weights: the sampling noise floor of PSNR");
  sub->add_option("--out", o->out, "Output directory (results.*, compare-PLAN.gif/png)");
  return {sub, [o]() { return run_evaluate(*o); }};
}

}  // namespace sparseplan::cli
