// A sparsity plan: for one model and one token grid, which key blocks each query block of each
// layer and head attends to. Plain data; plan_loader.h reads and validates it from JSON,
// plan_writer.h writes it, block_layout.h compiles it into CSR layouts for the kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sparseplan {

struct Grid {
  int frames = 0;
  int height = 0;
  int width = 0;
  int64_t tokens() const { return int64_t(frames) * height * width; }
  bool operator==(const Grid& o) const {
    return frames == o.frames && height == o.height && width == o.width;
  }
};

enum class TextPosition { None, Before, After };

struct TextLayout {
  TextPosition position = TextPosition::None;
  int tokens = 0;
};

// Windows may shrink as frames get further apart: the group applies to key tiles whose
// tile-frame distance from the query tile is at most max_frame_distance (and more than the
// previous group's). Extents are in tiles; the window is centred on the query tile and shifted
// to stay inside the grid, as Sliding Tile Attention does.
struct WindowGroup {
  int max_frame_distance = 0;
  int tiles_h = 1;
  int tiles_w = 1;
};

struct WindowRule {
  std::vector<WindowGroup> groups;       // sorted by max_frame_distance, strictly increasing
  std::vector<int> sink_frames;          // tile-frame indices whose key tiles every query sees
  std::vector<int> global_blocks;        // key blocks (video block numbering) every query sees
};

// Explicit static mask: rows[q] is the sorted list of video key blocks for video query block q.
struct BlocksRule {
  std::vector<std::vector<int32_t>> rows;
};

// Selected at run time: per query block the fewest key blocks whose mass reaches `recall`,
// but never fewer than min_density nor more than max_density of the key blocks.
struct OnlineRule {
  double recall = 0.9;
  double min_density = 0.0;
  double max_density = 1.0;
};

enum class RuleKind { Dense, Window, Blocks, Online };

struct HeadStats {
  double recall = -1.0;   // achieved on the search's captures; < 0 when unknown
  double density = -1.0;
};

struct HeadRule {
  RuleKind kind = RuleKind::Dense;
  WindowRule window;
  BlocksRule blocks;
  OnlineRule online;
  std::optional<HeadStats> stats;
};

struct Schedule {
  int total_steps = 0;                    // 0: any number of steps
  int warmup_steps = 0;                   // steps [0, warmup) run dense
  std::vector<int> dense_steps;           // further steps that run dense
  std::vector<int> reselect_steps;        // steps at which online heads re-select their blocks
  // With compensation residual_cache: further steps that run dense (as two block-sparse calls,
  // the layout and its complement) to refresh the cached share of the dropped blocks.
  std::vector<int> refresh_steps;
};

// What a calibrated search ran the model on and what the plan reached there. PSNR is of the
// final video against dense sampling from the same noise; values above kMaxPsnr (identical
// videos give +infinity) are stored as kMaxPsnr.
struct CalibrationInfo {
  static constexpr double kMaxPsnr = 200.0;
  std::vector<std::string> prompts;
  std::vector<int> seeds;
  int steps = 0;
  std::array<int, 3> video{0, 0, 0};   // frames, height, width in pixels
  double guidance = 0.0;
  double target_psnr = -1.0;           // < 0: not a quality target
  double target_time_fraction = -1.0;  // < 0: not a speed target
  double psnr_mean = 0.0;
  double psnr_worst = 0.0;
  double time_fraction = 0.0;          // predicted attention time / dense attention time
  int model_runs = 0;                  // sampling runs the calibration made
};

struct SearchInfo {
  double target_recall = -1.0;
  double density_budget = -1.0;
  std::string tool;
  std::vector<std::string> captures;
  std::optional<CalibrationInfo> calibration;
};

struct ModelInfo {
  std::string id;
  int layers = 0;
  int heads = 0;
  int head_dim = 0;
};

// What a sparse call does about the key blocks a head's layout leaves out.
enum class Compensation {
  None,      // dropped blocks contribute nothing
  PooledKV,  // each dropped block enters as one pooled key and value (runtime/pooled_kv.h)
  // The dropped blocks' share of the output (their normalised output and softmax weight per
  // query row) is computed exactly at the last warm-up step, dense steps and refresh steps, and
  // reused at the sparse steps until the next: attention maps barely change between steps.
  ResidualCache,
};

struct Plan {
  static constexpr const char* kFormat = "sparseplan/1";
  ModelInfo model;
  Grid grid;
  TextLayout text;
  int block_size = 64;
  std::array<int, 3> tile{4, 4, 4};      // (tf, th, tw) in tokens
  Schedule schedule;
  Compensation compensation = Compensation::None;
  std::optional<SearchInfo> search;
  std::vector<std::vector<HeadRule>> layers;  // [layer][head]
  std::string description;
};

// Whether sampling step `step` refreshes the residual cache: with compensation residual_cache,
// the last warm-up step, dense steps and refresh steps. The runtime and the cost model share it.
inline bool refreshes_residual_cache(const Plan& plan, int step) {
  const Schedule& s = plan.schedule;
  const auto listed = [&](const std::vector<int>& steps) {
    return std::find(steps.begin(), steps.end(), step) != steps.end();
  };
  return plan.compensation == Compensation::ResidualCache && step >= 0 &&
         (step == s.warmup_steps - 1 || listed(s.dense_steps) || listed(s.refresh_steps));
}

const char* rule_kind_name(RuleKind kind);
const char* text_position_name(TextPosition position);
const char* compensation_name(Compensation compensation);

}  // namespace sparseplan
