#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "plan/plan_loader.h"
#include "analyzer/mass_source.h"
#include "search/plan_compare.h"

namespace sparseplan::cli {

Command add_compare(CLI::App& app) {
  struct Options {
    std::vector<std::string> plans;
    std::vector<std::string> captures;
    bool baselines = false;
    bool no_oracle = false;
    bool markdown = false;
    double target = -1.0;
    double tolerance = 0.02;
    int threads = 2;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "compare", "Score plans on captures: density, mean and worst recall per head, oracle top-k");
  sub->add_option("plans", o->plans, "Plan JSON files")->required();
  sub->add_option("--captures", o->captures, "Capture files to score on (ideally not searched on)")->required();
  sub->add_flag("--baselines", o->baselines,
                "Add sliding-tile, radial and spatial-temporal baselines (tile of the first plan) "
                "and read their recall at the first plan's density");
  sub->add_flag("--no-oracle", o->no_oracle, "Skip the oracle per-input top-k");
  sub->add_flag("--markdown", o->markdown, "Print a Markdown table");
  sub->add_option("--target", o->target,
                  "Recall target for the share of heads within tolerance (default: the first "
                  "plan's searched target)");
  sub->add_option("--tolerance", o->tolerance, "Tolerance of that share")->capture_default_str();
  sub->add_option("--threads", o->threads, "Worker threads")->capture_default_str();
  sub->add_flag("--quiet", o->quiet, "No progress bar");
  return {sub, [o]() {
            std::vector<Plan> plans;
            for (const std::string& p : o->plans) plans.push_back(load_plan(p));
            const CaptureSet source(o->captures);
            const SourceInfo& info = source.info();
            for (size_t i = 0; i < plans.size(); ++i)
              check_plan_matches_source(plans[i], info, o->plans[i]);
            CompareOptions co;
            co.oracle = !o->no_oracle;
            co.threads = o->threads;
            const int64_t per_pass = int64_t(info.model.layers) * info.model.heads;
            std::unique_ptr<ProgressBar> bar;
            std::mutex bar_mutex;
            if (!o->quiet)
              bar = std::make_unique<ProgressBar>("compare", per_pass * (o->baselines ? 2 : 1));
            co.progress = [&] {
              if (!bar) return;
              std::lock_guard<std::mutex> lock(bar_mutex);
              bar->advance();
            };
            std::vector<PlanScore> scores = score_plans(plans, o->plans, source, co);
            std::vector<BaselineFamily> families;
            if (o->baselines) families = score_baselines(source, plans.front().tile, co);
            if (bar) bar->finish();
            std::vector<PlanScore> rows = scores;
            for (const BaselineFamily& f : families)
              for (const PlanScore& m : f.members) rows.push_back(m);
            std::cout << comparison_table(rows, o->markdown);

            double target = o->target;
            if (target < 0.0 && plans.front().search && plans.front().search->target_recall > 0.0)
              target = plans.front().search->target_recall;
            std::cout << std::fixed << std::setprecision(4);
            if (target > 0.0)
              for (const PlanScore& s : scores)
                std::cout << s.name << ": " << std::setprecision(1)
                          << 100.0 * s.share_within(target, o->tolerance) << std::setprecision(4)
                          << "% of heads keep worst recall >= " << target << " - " << o->tolerance
                          << "\n";
            if (!families.empty()) {
              const PlanScore& first = scores.front();
              std::cout << "at the density of " << first.name << " (" << first.mean_density
                        << "): its mean recall " << first.mean_recall << "\n";
              for (const BaselineFamily& f : families) {
                bool inside = false;
                const double r = f.recall_at(first.mean_density, &inside);
                std::cout << "  " << std::left << std::setw(18) << f.name << std::right
                          << " mean recall " << r
                          << (inside ? "" : "  (density outside the family's range: nearest member)")
                          << "\n";
              }
            }
            return 0;
          }};
}

}  // namespace sparseplan::cli
