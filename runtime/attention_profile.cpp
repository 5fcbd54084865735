#include "runtime/attention_profile.h"

#include <cstdio>
#include <numeric>

#include <torch/cuda.h>

namespace sparseplan {

AttentionProfile::AttentionProfile(bool timed, bool synchronize)
    : timed_(timed), synchronize_(synchronize) {}

AttentionProfile AttentionProfile::for_device(const torch::Device& device, bool profile) {
  if (device.is_cuda()) return AttentionProfile(profile, profile);
  return AttentionProfile(true, false);
}

void AttentionProfile::sync(const torch::Device& device) const {
  if (synchronize_ && device.is_cuda()) torch::cuda::synchronize(device.index());
}

AttentionProfile::Clock::time_point AttentionProfile::begin(const torch::Device& device) const {
  sync(device);
  return Clock::now();
}

void AttentionProfile::end(Part part, const torch::Device& device, Clock::time_point start) {
  sync(device);
  TimedCalls* slot = part == Part::Dense     ? &times_.dense
                     : part == Part::Sparse  ? &times_.sparse
                     : part == Part::Reorder ? &times_.reorder
                     : part == Part::Selection ? &times_.selection
                                               : &times_.compensation;
  ++slot->calls;
  if (timed_) slot->seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

void AttentionProfile::start_sampling(const torch::Device& device) {
  sync(device);
  steps_.clear();
  last_step_ = Clock::now();
}

void AttentionProfile::step_done(const torch::Device& device) {
  sync(device);
  const auto now = Clock::now();
  steps_.push_back(std::chrono::duration<double>(now - last_step_).count());
  last_step_ = now;
}

double AttentionProfile::sampling_seconds() const {
  return std::accumulate(steps_.begin(), steps_.end(), 0.0);
}

namespace {

std::string calls_line(const char* name, const TimedCalls& t, bool timed, double sampling) {
  char line[160];
  if (timed)
    std::snprintf(line, sizeof line, "  %s: %lld calls, %.3f s (%.1f%% of sampling)\n", name,
                  static_cast<long long>(t.calls), t.seconds,
                  sampling > 0 ? 100.0 * t.seconds / sampling : 0.0);
  else
    std::snprintf(line, sizeof line, "  %s: %lld calls\n", name,
                  static_cast<long long>(t.calls));
  return line;
}

}  // namespace

std::string format_profile(const AttentionProfile& p) {
  const auto& steps = p.step_seconds();
  const double sampling = p.sampling_seconds();
  const AttentionTimes& a = p.attention();
  char line[256];
  std::string s;
  const double mean = steps.empty() ? 0.0 : sampling / double(steps.size());
  std::snprintf(line, sizeof line, "profile: %zu steps, %.3f s sampling, %.3f s per step",
                steps.size(), sampling, mean);
  s += line;
  if (p.timed()) {
    std::snprintf(line, sizeof line, "; self-attention %.3f s (%.1f%%)%s\n", a.attention_seconds(),
                  sampling > 0 ? 100.0 * a.attention_seconds() / sampling : 0.0,
                  p.synchronizes() ? ", CUDA synchronised per call" : "");
    s += line;
  } else {
    s += "; attention not timed (CUDA runs asynchronously: add --profile to time it)\n";
  }
  s += calls_line("dense", a.dense, p.timed(), sampling);
  s += calls_line("sparse", a.sparse, p.timed(), sampling);
  if (a.sparse.calls > 0) {
    s += calls_line("reorder", a.reorder, p.timed(), sampling);
    if (p.timed() && a.sparse.seconds > 0) {
      std::snprintf(line, sizeof line, "  reorder is %.1f%% of the sparse calls' time\n",
                    100.0 * a.reorder.seconds / a.sparse.seconds);
      s += line;
    }
  }
  if (a.selection.calls > 0) s += calls_line("selection", a.selection, p.timed(), sampling);
  if (a.compensation.calls > 0)
    s += calls_line("compensation", a.compensation, p.timed(), sampling);
  return s;
}

}  // namespace sparseplan
