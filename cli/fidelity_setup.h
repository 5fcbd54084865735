// What `evaluate` and `calibrate` share: the sampling options (model, prompts, seeds, steps,
// video size, guidance, device), building a FidelityRunner from them, and the results table
// (text, Markdown, HTML, JSON, CSV) with dense-vs-plan videos side by side.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/wan_model.h"
#include "runtime/fidelity_runner.h"

namespace sparseplan::cli {

struct FidelitySettings {
  std::string model;
  std::string prompts_file;
  std::string seeds = "0";
  int steps = 30;
  std::string video = "16,64,64";  // frames, height, width in pixels
  double guidance = 5.0;
  double shift = 3.0;
  std::string device = "cpu";
  bool quiet = false;
};

void add_fidelity_options(CLI::App* sub, FidelitySettings& s);

std::vector<int> parse_count_list(const std::string& text, const std::string& option);

struct FidelitySetup {
  std::unique_ptr<WanModel> model;
  std::unique_ptr<FidelityRunner> runner;
  std::vector<std::string> prompts;
  std::vector<int> seeds;
  std::array<int, 3> video{0, 0, 0};
  Grid grid;
  ModelInfo model_info;
};

// Checks every argument and encodes every prompt before loading the weights; cases are every
// prompt with every seed. Throws std::invalid_argument naming the option or file.
FidelitySetup make_fidelity_setup(const FidelitySettings& s);
torch::Device fidelity_device(const std::string& name);

struct EvaluationRow {
  std::string name;
  std::string kind;     // dense, plan, floor
  int warmup = -1;      // warm-up steps of the run (-1: not a plan)
  FidelityResult result;
  double time_fraction = 0.0;  // predicted attention time / dense
};

// results.txt, results.md, results.html, results.json, results.csv in `dir`.
void write_evaluation_tables(const std::string& dir, const std::vector<EvaluationRow>& rows,
                             const std::string& settings_text);
std::string evaluation_text_table(const std::vector<EvaluationRow>& rows);

// `stem`.gif and `stem`.png: dense (left) and the plan (right), frame by frame.
void write_side_by_side(const std::string& stem, const torch::Tensor& dense,
                        const torch::Tensor& plan);

// Non-empty, non-comment lines of a prompt file, trimmed; throws naming the file when none.
std::vector<std::string> read_prompts_file(const std::string& path);

}  // namespace sparseplan::cli
