// Writes generated videos where people can look at them: an animated GIF (own LZW encoder,
// 6x7x6 colour cube with ordered dithering) and a PNG contact sheet of frames. Both written
// atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace sparseplan {

struct VideoFrames {
  int frames = 0;
  int height = 0;
  int width = 0;
  std::vector<uint8_t> rgb;  // [frames][height][width][3]
};

// video: [3, F, H, W] with values in [-1, 1] (clamped), any float dtype or device.
VideoFrames frames_from_video(const at::Tensor& video);

// fps: frames per second (delays are rounded to 1/100 s); scale: integer upscaling factor.
void write_gif(const std::string& path, const VideoFrames& video, int fps = 8, int scale = 1);

// Frames left to right, top to bottom, `columns` per row, separated by a 2-pixel gap.
void write_contact_sheet(const std::string& path, const VideoFrames& video, int columns = 8,
                         int scale = 1);

// The GIF LZW code stream (variable code size, clear and end codes) for palette indices of
// `min_code_size` bits; exposed for tests.
std::vector<uint8_t> gif_lzw_encode(const std::vector<uint8_t>& indices, int min_code_size);

}  // namespace sparseplan
