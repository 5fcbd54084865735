// Minimal PNG writer (8-bit gray or RGB, zlib from the system) for figures and video frames.
// Writes to a temporary file and renames it, so a failed write never leaves a broken PNG.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparseplan {

void write_png_gray(const std::string& path, int width, int height,
                    const std::vector<uint8_t>& pixels);
void write_png_rgb(const std::string& path, int width, int height,
                   const std::vector<uint8_t>& pixels);  // row-major, 3 bytes per pixel
// The bytes of the PNG file write_png_rgb would write (for images embedded in SVG).
std::string encode_png_rgb(int width, int height, const std::vector<uint8_t>& pixels);

}  // namespace sparseplan
