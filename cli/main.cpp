#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  namespace cli = sparseplan::cli;
  CLI::App app{"sparseplan: training-free sparse attention plans for video diffusion transformers"};
  app.set_version_flag("--version", std::string(SPARSEPLAN_VERSION));
  app.require_subcommand(1);

  const std::vector<cli::Command> commands = {
      cli::add_validate(app),
      cli::add_layout(app),
      cli::add_baseline(app),
      cli::add_capture(app),
      cli::add_generate(app),
      cli::add_search(app),
      cli::add_compare(app),
      cli::add_synth_capture(app),
      cli::add_analyze(app),
      cli::add_evaluate(app),
      cli::add_calibrate(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const cli::Command& command : commands) {
    if (!command.sub->parsed()) continue;
    try {
      return command.run();
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  return 1;
}
