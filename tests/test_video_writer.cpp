// The GIF writer's LZW stream decodes back to its input, files have the right structure, and
// contact sheets lay frames out in a grid.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <torch/types.h>

#include "io/video_writer.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using namespace sparseplan;

namespace {

// A plain GIF LZW decoder, written independently of the encoder's dictionary layout.
std::vector<uint8_t> lzw_decode(const std::vector<uint8_t>& data, int min_code_size) {
  const int clear = 1 << min_code_size, end = clear + 1;
  std::vector<std::vector<uint8_t>> table;
  auto reset = [&] {
    table.clear();
    for (int i = 0; i < clear; ++i) table.push_back({uint8_t(i)});
    table.push_back({});
    table.push_back({});
  };
  reset();
  int code_size = min_code_size + 1;
  size_t bit = 0;
  auto read = [&]() {
    int code = 0;
    for (int i = 0; i < code_size; ++i, ++bit) {
      if (bit / 8 >= data.size()) throw std::runtime_error("LZW stream ends early");
      code |= ((data[bit / 8] >> (bit % 8)) & 1) << i;
    }
    return code;
  };
  std::vector<uint8_t> out;
  int prev = -1;
  while (true) {
    const int code = read();
    if (code == clear) {
      reset();
      code_size = min_code_size + 1;
      prev = -1;
      continue;
    }
    if (code == end) break;
    std::vector<uint8_t> entry;
    if (code < int(table.size())) {
      entry = table[size_t(code)];
    } else if (code == int(table.size()) && prev >= 0) {
      entry = table[size_t(prev)];
      entry.push_back(entry[0]);
    } else {
      throw std::runtime_error("bad LZW code");
    }
    out.insert(out.end(), entry.begin(), entry.end());
    if (prev >= 0 && table.size() < 4096) {
      std::vector<uint8_t> added = table[size_t(prev)];
      added.push_back(entry[0]);
      table.push_back(added);
      if (int(table.size()) == (1 << code_size) && code_size < 12) ++code_size;
    }
    prev = code;
  }
  return out;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

VideoFrames gradient_video(int frames, int height, int width) {
  VideoFrames v{frames, height, width, {}};
  for (int f = 0; f < frames; ++f)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        v.rgb.push_back(uint8_t(x * 255 / std::max(1, width - 1)));
        v.rgb.push_back(uint8_t(y * 255 / std::max(1, height - 1)));
        v.rgb.push_back(uint8_t(f * 255 / std::max(1, frames - 1)));
      }
  return v;
}

}  // namespace

TEST_CASE("LZW of random indices decodes back, across dictionary resets") {
  std::mt19937 rng(3);
  std::vector<uint8_t> indices(200000);
  for (uint8_t& i : indices) i = uint8_t(rng() % 252);
  CHECK(lzw_decode(gif_lzw_encode(indices, 8), 8) == indices);
}

TEST_CASE("LZW of long runs decodes back") {
  std::vector<uint8_t> indices(100000, 7);
  for (size_t i = 50000; i < indices.size(); ++i) indices[i] = uint8_t((i / 1000) % 3);
  const std::vector<uint8_t> code = gif_lzw_encode(indices, 8);
  CHECK(code.size() < indices.size() / 20);
  CHECK(lzw_decode(code, 8) == indices);
}

TEST_CASE("LZW of a single index and of nothing decodes back") {
  CHECK(lzw_decode(gif_lzw_encode({5}, 8), 8) == std::vector<uint8_t>{5});
  CHECK(lzw_decode(gif_lzw_encode({}, 8), 8).empty());
}

TEST_CASE("an animated GIF has the header, screen size, one image per frame and a trailer") {
  const fs::path path = fs::temp_directory_path() / "sparseplan_test_video.gif";
  write_gif(path.string(), gradient_video(3, 10, 12), 8, 2);
  const std::vector<uint8_t> b = read_bytes(path);
  REQUIRE(b.size() > 13 + 768);
  CHECK(std::string(b.begin(), b.begin() + 6) == "GIF89a");
  CHECK(b[6] + 256 * b[7] == 24);
  CHECK(b[8] + 256 * b[9] == 20);
  CHECK(b.back() == 0x3B);
  // Walk the blocks: every image descriptor's LZW data decodes to width x height indices.
  size_t p = 13 + 768, images = 0;
  while (p < b.size() && b[p] != 0x3B) {
    if (b[p] == 0x21) {  // extension: label, then sub-blocks
      p += 2;
      while (b[p] != 0) p += b[p] + 1;
      ++p;
    } else {
      REQUIRE(b[p] == 0x2C);
      p += 10;
      const int min_code = b[p++];
      std::vector<uint8_t> data;
      while (b[p] != 0) {
        data.insert(data.end(), b.begin() + long(p) + 1, b.begin() + long(p) + 1 + b[p]);
        p += b[p] + 1;
      }
      ++p;
      CHECK(lzw_decode(data, min_code).size() == 24u * 20u);
      ++images;
    }
  }
  CHECK(images == 3);
  fs::remove(path);
}

TEST_CASE("video tensors in [-1, 1] become 8-bit frames, clamped") {
  torch::Tensor v = torch::zeros({3, 2, 1, 2});
  v[0][0][0][0] = -1.0;
  v[1][0][0][0] = 1.0;
  v[2][0][0][0] = 5.0;
  const VideoFrames f = frames_from_video(v);
  CHECK(f.frames == 2);
  CHECK(f.height == 1);
  CHECK(f.width == 2);
  CHECK(f.rgb[0] == 0);
  CHECK(f.rgb[1] == 255);
  CHECK(f.rgb[2] == 255);
  CHECK(f.rgb[3] == 128);
  CHECK_THROWS_AS(frames_from_video(torch::zeros({4, 1, 2, 2})), std::invalid_argument);
}

TEST_CASE("a contact sheet is a PNG sized by columns, rows and gaps") {
  const fs::path path = fs::temp_directory_path() / "sparseplan_test_sheet.png";
  write_contact_sheet(path.string(), gradient_video(5, 8, 6), 4, 1);
  const std::vector<uint8_t> b = read_bytes(path);
  REQUIRE(b.size() > 24);
  CHECK(b[1] == 'P');
  auto be32 = [&](size_t i) { return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]; };
  CHECK(be32(16) == 4 * 6 + 5 * 2);
  CHECK(be32(20) == 2 * 8 + 3 * 2);
  fs::remove(path);
}

TEST_CASE("inconsistent frames are rejected before anything is written") {
  const fs::path path = fs::temp_directory_path() / "sparseplan_test_bad.gif";
  fs::remove(path);
  VideoFrames bad = gradient_video(2, 4, 4);
  bad.rgb.pop_back();
  CHECK_THROWS_AS(write_gif(path.string(), bad), std::invalid_argument);
  CHECK(!fs::exists(path));
}
