#include <iostream>
#include <memory>
#include <mutex>

#include "io/capture_file.h"
#include "io/evaluation_file.h"
#include "analyzer/report.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"

namespace sparseplan::cli {

Command add_analyze(CLI::App& app) {
  struct Options {
    std::vector<std::string> captures;
    std::string out;
    std::string tile;
    std::string evaluation;
    int threads = 2;
    int heatmaps = 8;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "analyze", "Per-head patterns, recall curves and stability of captures, as an HTML report");
  sub->add_option("captures", o->captures, "Capture files (same model and grid)")->required();
  sub->add_option("--out", o->out, "Report directory (index.html, analysis.json, figures/)")->required();
  sub->add_option("--tile", o->tile, "Tile shape to analyse (default: the first captured)");
  sub->add_option("--threads", o->threads, "Worker threads")->capture_default_str();
  sub->add_option("--heatmaps", o->heatmaps, "Heads drawn as block-mass heatmaps")->capture_default_str();
  sub->add_option("--evaluation", o->evaluation,
                  "JSON results of `sparseplan evaluate`: adds the PSNR/density frontier figure and table");
  sub->add_flag("--quiet", o->quiet, "No progress bar");
  return {sub, [o]() {
            AnalyzeOptions ao;
            if (!o->evaluation.empty()) {
              ao.evaluation = read_evaluation_file(o->evaluation);
              ao.evaluation_path = o->evaluation;
            }
            const CaptureSet source(o->captures);
            if (!o->tile.empty()) ao.tile = parse_tile_name(o->tile);
            ao.threads = o->threads;
            ao.heatmaps = o->heatmaps;
            std::unique_ptr<ProgressBar> bar;
            std::mutex bar_mutex;
            if (!o->quiet)
              bar = std::make_unique<ProgressBar>(
                  "analyze", int64_t(source.info().model.layers) * source.info().model.heads);
            ao.progress = [&] {
              if (!bar) return;
              std::lock_guard<std::mutex> lock(bar_mutex);
              bar->advance();
            };
            const Analysis analysis = analyze_captures(source, ao);
            if (bar) bar->finish();
            write_analysis_report(o->out, source, analysis, ao);
            std::cout << "wrote " << o->out << "/index.html\n";
            return 0;
          }};
}

}  // namespace sparseplan::cli
