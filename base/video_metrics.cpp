#include "base/video_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparseplan {
namespace {

constexpr int kWindow = 11;
constexpr double kSigma = 1.5;

std::vector<double> gaussian_window(int size) {
  std::vector<double> w(size_t(size) * size);
  const double c = (size - 1) / 2.0;
  double sum = 0.0;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const double d2 = (y - c) * (y - c) + (x - c) * (x - c);
      sum += w[size_t(y) * size + x] = std::exp(-d2 / (2 * kSigma * kSigma));
    }
  for (double& v : w) v /= sum;
  return w;
}

void check_shape(const VideoShape& s) {
  if (s.channels <= 0 || s.frames <= 0 || s.height <= 0 || s.width <= 0)
    throw std::invalid_argument("video metrics: empty video shape " + std::to_string(s.channels) +
                                "x" + std::to_string(s.frames) + "x" + std::to_string(s.height) +
                                "x" + std::to_string(s.width));
}

}  // namespace

double psnr_from_mse(double mse, double range) {
  if (mse <= 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(range * range / mse);
}

double mse_from_psnr(double psnr, double range) {
  return range * range / std::pow(10.0, psnr / 10.0);
}

double mean_squared_error(const float* ref, const float* test, size_t n) {
  if (n == 0) return 0.0;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(test[i]) - double(ref[i]);
    sum += d * d;
  }
  return sum / double(n);
}

double relative_l2(const float* ref, const float* test, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(test[i]) - double(ref[i]);
    diff += d * d;
    norm += double(ref[i]) * double(ref[i]);
  }
  if (diff == 0.0) return 0.0;
  if (norm == 0.0) return std::numeric_limits<double>::infinity();
  return std::sqrt(diff / norm);
}

double video_ssim(const float* ref, const float* test, const VideoShape& s, double range) {
  check_shape(s);
  const int win = std::min({kWindow, s.height, s.width});
  const std::vector<double> w = gaussian_window(win);
  const double c1 = (0.01 * range) * (0.01 * range);
  const double c2 = (0.03 * range) * (0.03 * range);
  const int oy = s.height - win + 1, ox = s.width - win + 1;
  const size_t plane = size_t(s.height) * s.width;
  double total = 0.0;
  for (int64_t p = 0; p < int64_t(s.channels) * s.frames; ++p) {
    const float* a = ref + size_t(p) * plane;
    const float* b = test + size_t(p) * plane;
    double plane_sum = 0.0;
    for (int y0 = 0; y0 < oy; ++y0)
      for (int x0 = 0; x0 < ox; ++x0) {
        double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
        for (int y = 0; y < win; ++y)
          for (int x = 0; x < win; ++x) {
            const double g = w[size_t(y) * win + x];
            const size_t i = size_t(y0 + y) * s.width + size_t(x0 + x);
            const double va = a[i], vb = b[i];
            ma += g * va;
            mb += g * vb;
            saa += g * va * va;
            sbb += g * vb * vb;
            sab += g * va * vb;
          }
        const double var_a = saa - ma * ma, var_b = sbb - mb * mb, cov = sab - ma * mb;
        plane_sum += ((2 * ma * mb + c1) * (2 * cov + c2)) /
                     ((ma * ma + mb * mb + c1) * (var_a + var_b + c2));
      }
    total += plane_sum / (double(oy) * ox);
  }
  return total / double(int64_t(s.channels) * s.frames);
}

VideoQuality compare_video(const float* ref, const float* test, const VideoShape& shape,
                           double range) {
  check_shape(shape);
  const size_t n = size_t(shape.elements());
  VideoQuality q;
  q.mse = mean_squared_error(ref, test, n);
  q.psnr = psnr_from_mse(q.mse, range);
  q.rel_l2 = relative_l2(ref, test, n);
  q.ssim = video_ssim(ref, test, shape, range);
  return q;
}

}  // namespace sparseplan
