#include "io/video_writer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include <torch/types.h>

#include "io/png_writer.h"
#include "base/atomic_file.h"

namespace sparseplan {
namespace {

// The palette is a 6 x 7 x 6 colour cube (green gets the extra level: the eye is most sensitive
// to it); 252 colours, the last 4 entries black.
constexpr int kLevelsR = 6, kLevelsG = 7, kLevelsB = 6;

uint8_t level_value(int level, int levels) {
  return static_cast<uint8_t>(std::lround(level * 255.0 / (levels - 1)));
}

// 4x4 Bayer thresholds in (-0.5, 0.5): ordered dithering hides the cube's banding without the
// frame-to-frame flicker of error diffusion.
double bayer(int x, int y) {
  static const int m[4][4] = {{0, 8, 2, 10}, {12, 4, 14, 6}, {3, 11, 1, 9}, {15, 7, 13, 5}};
  return (m[y & 3][x & 3] + 0.5) / 16.0 - 0.5;
}

int quantise(uint8_t v, int levels, double threshold) {
  const double step = 255.0 / (levels - 1);
  const int level = int(std::floor(v / step + 0.5 + threshold));
  return std::clamp(level, 0, levels - 1);
}

void check_video(const VideoFrames& video, int scale, const std::string& path) {
  if (video.frames < 1 || video.height < 1 || video.width < 1 ||
      video.rgb.size() != size_t(video.frames) * video.height * video.width * 3)
    throw std::invalid_argument(path + ": video frames are empty or inconsistent");
  if (scale < 1 || scale > 64) throw std::invalid_argument(path + ": scale must be 1..64");
  if (int64_t(video.width) * scale > 65535 || int64_t(video.height) * scale > 65535)
    throw std::invalid_argument(path + ": scaled video is too large");
}

class BitWriter {
 public:
  void put(int code, int bits) {
    acc_ |= uint32_t(code) << n_;
    n_ += bits;
    while (n_ >= 8) {
      out.push_back(uint8_t(acc_ & 0xFF));
      acc_ >>= 8;
      n_ -= 8;
    }
  }
  void flush() {
    if (n_ > 0) out.push_back(uint8_t(acc_ & 0xFF));
    acc_ = 0;
    n_ = 0;
  }
  std::vector<uint8_t> out;

 private:
  uint32_t acc_ = 0;
  int n_ = 0;
};

void put_u16(std::string& s, int v) {
  s.push_back(char(v & 0xFF));
  s.push_back(char((v >> 8) & 0xFF));
}

}  // namespace

VideoFrames frames_from_video(const at::Tensor& video) {
  if (video.dim() != 4 || video.size(0) != 3)
    throw std::invalid_argument("video must be [3, F, H, W]");
  torch::Tensor v = video.detach().to(torch::kCPU, torch::kFloat32);
  v = torch::nan_to_num(v, 0.0).clamp(-1.0, 1.0).add(1.0).mul(127.5).round();
  v = v.to(torch::kUInt8).permute({1, 2, 3, 0}).contiguous();
  VideoFrames out;
  out.frames = int(video.size(1));
  out.height = int(video.size(2));
  out.width = int(video.size(3));
  const uint8_t* p = v.data_ptr<uint8_t>();
  out.rgb.assign(p, p + v.numel());
  return out;
}

std::vector<uint8_t> gif_lzw_encode(const std::vector<uint8_t>& indices, int min_code_size) {
  if (min_code_size < 2 || min_code_size > 8)
    throw std::invalid_argument("gif_lzw_encode: min_code_size must be 2..8");
  const int clear = 1 << min_code_size, end = clear + 1;
  // child[prefix * 256 + byte]: the code for prefix followed by byte, or -1.
  std::vector<int16_t> child(size_t(4096) * 256, -1);
  BitWriter w;
  int code_size = min_code_size + 1;
  int next_code = end + 1;
  w.put(clear, code_size);
  if (indices.empty()) {
    w.put(end, code_size);
    w.flush();
    return w.out;
  }
  int prefix = indices[0];
  for (size_t i = 1; i < indices.size(); ++i) {
    const int c = indices[i];
    if (c >= clear) throw std::invalid_argument("gif_lzw_encode: index outside the palette");
    const int16_t found = child[size_t(prefix) * 256 + size_t(c)];
    if (found >= 0) {
      prefix = found;
      continue;
    }
    w.put(prefix, code_size);
    child[size_t(prefix) * 256 + size_t(c)] = int16_t(next_code);
    // A code that needs one more bit raises the width (decoders do the same, one code later).
    if (next_code >= (1 << code_size) && code_size < 12) ++code_size;
    ++next_code;
    if (next_code == 4096) {
      w.put(clear, code_size);
      std::fill(child.begin(), child.end(), int16_t(-1));
      code_size = min_code_size + 1;
      next_code = end + 1;
    }
    prefix = c;
  }
  w.put(prefix, code_size);
  w.put(end, code_size);
  w.flush();
  return w.out;
}

void write_gif(const std::string& path, const VideoFrames& video, int fps, int scale) {
  check_video(video, scale, path);
  if (fps < 1 || fps > 100) throw std::invalid_argument(path + ": fps must be 1..100");
  const int W = video.width * scale, H = video.height * scale;
  std::string gif = "GIF89a";
  put_u16(gif, W);
  put_u16(gif, H);
  gif.push_back(char(0xF7));  // global colour table of 256 entries, 8-bit colour resolution
  gif.push_back(0);
  gif.push_back(0);
  int entries = 0;
  for (int r = 0; r < kLevelsR; ++r)
    for (int g = 0; g < kLevelsG; ++g)
      for (int b = 0; b < kLevelsB; ++b, ++entries) {
        gif.push_back(char(level_value(r, kLevelsR)));
        gif.push_back(char(level_value(g, kLevelsG)));
        gif.push_back(char(level_value(b, kLevelsB)));
      }
  for (; entries < 256; ++entries) gif.append(3, '\0');
  gif += std::string("\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00", 19);  // loop forever

  const int delay = std::max(1, int(std::lround(100.0 / fps)));
  std::vector<uint8_t> indices(size_t(W) * H);
  for (int f = 0; f < video.frames; ++f) {
    const uint8_t* frame = video.rgb.data() + size_t(f) * video.height * video.width * 3;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const uint8_t* px = frame + (size_t(y / scale) * video.width + size_t(x / scale)) * 3;
        const double t = bayer(x, y);
        indices[size_t(y) * W + x] = uint8_t(quantise(px[0], kLevelsR, t) * kLevelsG * kLevelsB +
                                             quantise(px[1], kLevelsG, t) * kLevelsB +
                                             quantise(px[2], kLevelsB, t));
      }
    gif += std::string("\x21\xF9\x04\x00", 4);  // graphic control: no disposal, no transparency
    put_u16(gif, delay);
    gif += std::string("\x00\x00", 2);
    gif.push_back(0x2C);  // image descriptor covering the whole screen
    put_u16(gif, 0);
    put_u16(gif, 0);
    put_u16(gif, W);
    put_u16(gif, H);
    gif.push_back(0);
    gif.push_back(8);  // LZW minimum code size
    const std::vector<uint8_t> data = gif_lzw_encode(indices, 8);
    for (size_t i = 0; i < data.size(); i += 255) {
      const size_t n = std::min<size_t>(255, data.size() - i);
      gif.push_back(char(n));
      gif.append(reinterpret_cast<const char*>(data.data() + i), n);
    }
    gif.push_back(0);
  }
  gif.push_back(0x3B);
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    out.write(gif.data(), std::streamsize(gif.size()));
    out.flush();
    if (!out) throw std::runtime_error(path + ": write failed");
  });
}

void write_contact_sheet(const std::string& path, const VideoFrames& video, int columns,
                         int scale) {
  check_video(video, scale, path);
  if (columns < 1) throw std::invalid_argument(path + ": columns must be >= 1");
  constexpr int kGap = 2;
  constexpr uint8_t kBackground = 32;
  const int cols = std::min(columns, video.frames);
  const int rows = (video.frames + cols - 1) / cols;
  const int fw = video.width * scale, fh = video.height * scale;
  const int W = cols * fw + (cols + 1) * kGap, H = rows * fh + (rows + 1) * kGap;
  std::vector<uint8_t> sheet(size_t(W) * H * 3, kBackground);
  for (int f = 0; f < video.frames; ++f) {
    const int x0 = kGap + (f % cols) * (fw + kGap), y0 = kGap + (f / cols) * (fh + kGap);
    const uint8_t* frame = video.rgb.data() + size_t(f) * video.height * video.width * 3;
    for (int y = 0; y < fh; ++y)
      for (int x = 0; x < fw; ++x) {
        const uint8_t* px = frame + (size_t(y / scale) * video.width + size_t(x / scale)) * 3;
        std::copy(px, px + 3, sheet.data() + (size_t(y0 + y) * W + size_t(x0 + x)) * 3);
      }
  }
  write_png_rgb(path, W, H, sheet);
}

}  // namespace sparseplan
