// Each subcommand registers itself on the app and returns the function that runs it once
// parsing picked it. Runners return the process exit code; errors are thrown as std::exception
// and main reports them with a non-zero exit.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace sparseplan::cli {

struct Command {
  CLI::App* sub = nullptr;
  std::function<int()> run;
};

Command add_validate(CLI::App& app);
Command add_layout(CLI::App& app);
Command add_baseline(CLI::App& app);
Command add_capture(CLI::App& app);
Command add_generate(CLI::App& app);

Command add_search(CLI::App& app);
Command add_compare(CLI::App& app);
Command add_synth_capture(CLI::App& app);
Command add_analyze(CLI::App& app);
Command add_evaluate(CLI::App& app);
Command add_calibrate(CLI::App& app);

}  // namespace sparseplan::cli
