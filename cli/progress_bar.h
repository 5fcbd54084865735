// A one-line progress bar on stderr: redrawn in place on a terminal, printed at every 10% when
// stderr is a file or pipe so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sparseplan::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  void advance(int64_t n = 1);
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  int last_decile_ = -1;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sparseplan::cli
