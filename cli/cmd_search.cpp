#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "plan/plan_writer.h"
#include "analyzer/mass_source.h"
#include "search/plan_search.h"

namespace sparseplan::cli {

Command add_search(CLI::App& app) {
  struct Options {
    std::vector<std::string> captures;
    double recall = -1.0;
    double budget = -1.0;
    double margin = 0.01;  // measured on wan-mini: held-out prompts lose up to ~0.03
    std::vector<std::string> tiles;
    int threads = 2;
    bool no_online = false;
    bool no_blocks = false;
    bool quiet = false;
    std::string out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "search", "Search the smallest plan keeping a recall target (or the best plan for a mean "
                "density budget) on captures");
  sub->add_option("captures", o->captures, "Capture files (same model and grid)")->required();
  sub->add_option("--recall", o->recall, "Recall every head keeps on every captured sample");
  sub->add_option("--budget", o->budget, "Mean density over heads, spread to maximise the lowest recall");
  sub->add_option("--margin", o->margin, "Search for recall + margin (headroom for unseen prompts)")->capture_default_str();
  sub->add_option("--tile", o->tiles, "Candidate tile shape (repeatable, e.g. 4x4x4); default: every captured one");
  sub->add_option("--threads", o->threads, "Worker threads")->capture_default_str();
  sub->add_flag("--no-online", o->no_online, "Never choose online selection");
  sub->add_flag("--no-blocks", o->no_blocks, "Never choose static block lists");
  sub->add_flag("--quiet", o->quiet, "No progress bar");
  sub->add_option("--out", o->out, "Plan JSON to write")->required();
  return {sub, [o]() {
            if ((o->recall > 0.0) == (o->budget > 0.0))
              throw std::invalid_argument("give exactly one of --recall R and --budget D");
            const CaptureSet source(o->captures);
            PlanSearchOptions so;
            so.target_recall = o->recall;
            so.density_budget = o->budget;
            so.margin = o->margin;
            for (const std::string& t : o->tiles) so.tiles.push_back(parse_tile_name(t));
            so.threads = o->threads;
            so.allow_online = !o->no_online;
            so.allow_blocks = !o->no_blocks;
            const SourceInfo& info = source.info();
            const size_t tiles = so.tiles.empty() ? info.tiles.size() : so.tiles.size();
            std::unique_ptr<ProgressBar> bar;
            std::mutex bar_mutex;
            if (!o->quiet)
              bar = std::make_unique<ProgressBar>(
                  "search", int64_t(tiles) * info.model.layers * info.model.heads);
            so.progress = [&] {
              if (!bar) return;
              std::lock_guard<std::mutex> lock(bar_mutex);
              bar->advance();
            };
            const PlanSearchResult result = search_plan(source, so);
            if (bar) bar->finish();
            write_plan(o->out, result.plan);
            std::cout << std::fixed << std::setprecision(4);
            for (const TileResult& t : result.tiles)
              std::cout << "tile " << tile_text(t.tile) << ": mean density " << t.mean_density
                        << ", padding " << 100.0 * t.padded_fraction << "%, work "
                        << t.cost << " of dense, lowest recall " << t.lowest_recall
                        << (t.tile == result.plan.tile ? "  (chosen)" : "") << "\n";
            std::cout << "wrote " << o->out << ": " << result.plan.description << "\n";
            return 0;
          }};
}

}  // namespace sparseplan::cli
