#include "io/png_writer.h"

#include <zlib.h>

#include <fstream>
#include <stdexcept>

#include "base/atomic_file.h"

namespace sparseplan {
namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(char((v >> shift) & 0xff));
}

void put_chunk(std::string& png, const char* type, const std::string& data) {
  put_u32(png, uint32_t(data.size()));
  std::string body(type, 4);
  body += data;
  png += body;
  put_u32(png, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
}

std::string encode_png(const std::string& what, int width, int height, int channels,
                       const std::vector<uint8_t>& pixels) {
  if (width <= 0 || height <= 0)
    throw std::invalid_argument(what + ": image size must be positive");
  const size_t stride = size_t(width) * size_t(channels);
  if (pixels.size() != stride * size_t(height))
    throw std::invalid_argument(what + ": pixel buffer does not match the image size");
  std::string raw;
  raw.reserve((stride + 1) * size_t(height));
  for (int y = 0; y < height; ++y) {
    raw.push_back('\0');  // filter: none
    raw.append(reinterpret_cast<const char*>(pixels.data()) + size_t(y) * stride, stride);
  }
  uLongf packed_size = compressBound(uLong(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), 6) != Z_OK)
    throw std::runtime_error(what + ": zlib compression failed");
  packed.resize(packed_size);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  put_u32(header, uint32_t(width));
  put_u32(header, uint32_t(height));
  header += char(8);                          // bit depth
  header += char(channels == 3 ? 2 : 0);      // colour type: RGB or gray
  header += std::string("\0\0\0", 3);         // compression, filter, interlace
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

void write_png(const std::string& path, int width, int height, int channels,
               const std::vector<uint8_t>& pixels) {
  const std::string png = encode_png(path, width, height, channels, pixels);
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(png.data(), std::streamsize(png.size()));
    if (!out) throw std::runtime_error(path + ": cannot write");
  });
}

}  // namespace

void write_png_gray(const std::string& path, int width, int height,
                    const std::vector<uint8_t>& pixels) {
  write_png(path, width, height, 1, pixels);
}

void write_png_rgb(const std::string& path, int width, int height,
                   const std::vector<uint8_t>& pixels) {
  write_png(path, width, height, 3, pixels);
}

std::string encode_png_rgb(int width, int height, const std::vector<uint8_t>& pixels) {
  return encode_png("PNG image", width, height, 3, pixels);
}

}  // namespace sparseplan
