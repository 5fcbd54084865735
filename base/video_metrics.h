// Fidelity of a video against a reference video of the same shape [channels, frames, height,
// width] (float, values in [-1, 1] as the runner writes them): mean squared error, PSNR, relative
// L2 and SSIM. PSNR uses the peak-to-peak range of the data (2 for [-1, 1]): PSNR =
// 10 log10(range^2 / MSE), infinite for identical videos.
// SSIM (Wang et al. 2004) is computed per frame and channel with the standard 11 x 11 Gaussian
// window (sigma 1.5) over every position where the window fits inside the frame ("valid"),
// K1 = 0.01, K2 = 0.03 scaled by the same range, and averaged over frames and channels. Frames
// smaller than 11 pixels on a side use a window of the frame's smaller side (still Gaussian with
// sigma 1.5), so tiny test grids get a defined value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparseplan {

struct VideoShape {
  int channels = 0;
  int frames = 0;
  int height = 0;
  int width = 0;
  int64_t elements() const { return int64_t(channels) * frames * height * width; }
};

struct VideoQuality {
  double mse = 0.0;
  double psnr = 0.0;    // dB; +infinity when the videos are identical
  double ssim = 1.0;
  double rel_l2 = 0.0;  // ||test - ref|| / ||ref||
};

// 10 log10(range^2 / mse); +infinity for mse == 0.
double psnr_from_mse(double mse, double range = 2.0);
// The MSE that gives `psnr` dB.
double mse_from_psnr(double psnr, double range = 2.0);

double mean_squared_error(const float* ref, const float* test, size_t n);
// 0 when both are zero; +infinity when only the reference is zero.
double relative_l2(const float* ref, const float* test, size_t n);
// Throws std::invalid_argument for an empty shape.
double video_ssim(const float* ref, const float* test, const VideoShape& shape,
                  double range = 2.0);

// All four; throws std::invalid_argument for an empty shape.
VideoQuality compare_video(const float* ref, const float* test, const VideoShape& shape,
                           double range = 2.0);

}  // namespace sparseplan
