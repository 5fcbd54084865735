#include "cli/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace sparseplan::cli {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {
  draw(false);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n) {
  done_ = std::min(total_, done_ + n);
  draw(false);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  const double frac = double(done_) / double(total_);
  const int decile = int(frac * 10);
  if (!tty_ && !final && decile == last_decile_) return;
  last_decile_ = decile;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done_ > 0 ? secs * double(total_ - done_) / double(done_) : 0.0;
  constexpr int kWidth = 30;
  const int filled = int(frac * kWidth);
  std::string bar(size_t(filled), '#');
  bar.append(size_t(kWidth - filled), '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld  %.1fs elapsed, %.1fs left%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(), int(frac * 100),
               static_cast<long long>(done_), static_cast<long long>(total_), secs, eta,
               tty_ && !final ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace sparseplan::cli
