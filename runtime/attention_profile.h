// Where the time of a sampling run goes: per step, and per kind of self-attention work (dense
// calls, sparse calls, the reorder into tile order and back inside sparse calls, online
// selection, pooled compensation). The backends time their work through one AttentionProfile.
// CUDA runs asynchronously: a host clock only measures kernels when the device is synchronised
// around each timed region, which slows the run down, so on CUDA attention is timed only when
// asked for (--profile); on the CPU the host clock is the work's time and it is always timed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/types.h>

namespace sparseplan {

struct TimedCalls {
  int64_t calls = 0;
  double seconds = 0.0;
};

struct AttentionTimes {
  TimedCalls dense;      // calls run dense (no plan, warm-up, dense steps, all-dense layers)
  TimedCalls sparse;     // calls run block-sparse, reorder and selection included
  TimedCalls reorder;    // gather into tile order and scatter back, inside sparse calls
  TimedCalls selection;  // online selections (dense pass, block mass, choice), inside sparse calls
  TimedCalls compensation;  // pooled attention over dropped blocks and the merge, inside sparse calls
  double attention_seconds() const { return dense.seconds + sparse.seconds; }
};

class AttentionProfile {
 public:
  enum class Part { Dense, Sparse, Reorder, Selection, Compensation };

  // timed: measure times (otherwise only count calls); synchronize: wait for the CUDA device
  // before and after each timed region and step.
  AttentionProfile(bool timed, bool synchronize);
  // The profile a run on `device` gets: always timed on the CPU; on CUDA timed and
  // synchronised only when `profile` is set.
  static AttentionProfile for_device(const torch::Device& device, bool profile);

  bool timed() const { return timed_; }
  bool synchronizes() const { return synchronize_; }

  // Runs f and books one call and its time under `part`.
  template <typename F>
  auto time(Part part, const torch::Device& device, F&& f) -> decltype(f()) {
    const auto start = begin(device);
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      end(part, device, start);
    } else {
      auto result = f();
      end(part, device, start);
      return result;
    }
  }

  // Marks the start of sampling and the end of each step (after the step's work is queued).
  void start_sampling(const torch::Device& device);
  void step_done(const torch::Device& device);

  const AttentionTimes& attention() const { return times_; }
  const std::vector<double>& step_seconds() const { return steps_; }
  double sampling_seconds() const;

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point begin(const torch::Device& device) const;
  void end(Part part, const torch::Device& device, Clock::time_point start);
  void sync(const torch::Device& device) const;

  bool timed_ = true;
  bool synchronize_ = false;
  AttentionTimes times_;
  Clock::time_point last_step_{};
  std::vector<double> steps_;
};

// The end-of-run summary, a few lines: steps and their mean time, the attention share, dense
// and sparse calls with count and time, reorder and selection overhead. Times that were not
// measured (CUDA without --profile) are said to be so.
std::string format_profile(const AttentionProfile& profile);

}  // namespace sparseplan
