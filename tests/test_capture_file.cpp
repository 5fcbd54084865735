#include <catch2/catch.hpp>

#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/capture_file.h"
#include "scratch_dir.h"

using namespace sparseplan;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

CaptureInfo small_info(int prompts = 2) {
  CaptureInfo info;
  info.model = {"toy", 3, 2, 16};
  info.grid = {4, 8, 8};
  info.block_size = 64;
  info.tiles = {{4, 4, 4}, {2, 4, 8}};
  info.num_prompts = prompts;
  for (int p = 0; p < prompts; ++p) {
    info.prompts.push_back("prompt number " + std::to_string(p));
    info.seeds.push_back(100 + p);
  }
  info.steps = {0, 5, 9};
  info.timesteps = {1000.0, 800.0, 100.0};
  info.model_config_json = R"({"dim": 32})";
  info.sampler_json = R"({"steps": 10})";
  return info;
}

// A deterministic mass matrix whose rows sum to 1; distinct for every (tile, p, s, l, h).
std::vector<float> mass_of(int nb, int tile, int p, int s, int l, int h) {
  std::vector<float> m(size_t(nb) * size_t(nb));
  for (int i = 0; i < nb; ++i) {
    double total = 0;
    for (int j = 0; j < nb; ++j) total += 1 + ((i * 7 + j * 3 + tile + p * 5 + s * 11 + l * 13 + h * 17) % 19);
    for (int j = 0; j < nb; ++j)
      m[size_t(i * nb + j)] =
          float((1 + ((i * 7 + j * 3 + tile + p * 5 + s * 11 + l * 13 + h * 17) % 19)) / total);
  }
  return m;
}

std::vector<float> stat_of(int nb, float base) {
  std::vector<float> v(static_cast<size_t>(nb));
  for (int i = 0; i < nb; ++i) v[size_t(i)] = base + float(i) * 0.25f;
  return v;
}

// Writes every head of `info` (all layers captured unless info.layers says otherwise).
void write_all(CaptureWriter& w, bool full_lse = false) {
  const CaptureInfo& info = w.info();
  for (size_t t = 0; t < info.tiles.size(); ++t) {
    const int nb = capture_num_blocks(info, info.tiles[t]);
    for (int p = 0; p < info.num_prompts; ++p)
      for (int s = 0; s < int(info.steps.size()); ++s)
        for (int l : info.layers)
          for (int h = 0; h < info.model.heads; ++h) {
            w.write_head_mass(info.tiles[t], p, s, l, h, mass_of(nb, int(t), p, s, l, h).data());
            const float base = float(p * 100 + s * 10 + l + h * 0.5);
            w.write_lse_stats(info.tiles[t], p, s, l, h, stat_of(nb, base).data(),
                              stat_of(nb, base - 1).data(), stat_of(nb, base + 1).data());
          }
  }
  if (full_lse)
    for (int p = 0; p < info.num_prompts; ++p)
      for (int s = 0; s < int(info.steps.size()); ++s)
        for (int l : info.layers)
          for (int h = 0; h < info.model.heads; ++h)
            w.write_full_lse(p, s, l, h, stat_of(int(info.grid.tokens()), float(p + s + l + h)).data());
}

std::string write_capture(const fs::path& path, const CaptureInfo& info, bool full_lse = false) {
  CaptureWriter::Options o;
  o.full_lse = full_lse;
  CaptureWriter w(path.string(), info, o);
  write_all(w, full_lse);
  w.finish();
  return path.string();
}

void set_root_int_attr(const std::string& path, const char* name, int64_t value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  H5Awrite(a, H5T_NATIVE_INT64, &value);
  H5Aclose(a);
  H5Fclose(f);
}

}  // namespace

TEST_CASE("capture file: metadata round-trips through the writer and reader") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = write_capture(dir / "meta.h5", small_info());
  const CaptureInfo info = read_capture_info(path);
  CHECK(info.path == path);
  CHECK(info.model.id == "toy");
  CHECK(info.model.layers == 3);
  CHECK(info.model.heads == 2);
  CHECK(info.model.head_dim == 16);
  CHECK(info.grid == Grid{4, 8, 8});
  CHECK(info.text.position == TextPosition::None);
  CHECK(info.block_size == 64);
  CHECK(info.tiles == std::vector<std::array<int, 3>>{{4, 4, 4}, {2, 4, 8}});
  CHECK(info.num_prompts == 2);
  CHECK(info.prompts == std::vector<std::string>{"prompt number 0", "prompt number 1"});
  CHECK(info.seeds == std::vector<int64_t>{100, 101});
  CHECK(info.steps == std::vector<int>{0, 5, 9});
  CHECK(info.layers == std::vector<int>{0, 1, 2});
  CHECK(info.timesteps == std::vector<double>{1000.0, 800.0, 100.0});
  CHECK(info.model_config_json == R"({"dim": 32})");
  CHECK(info.sampler_json == R"({"steps": 10})");
  CHECK(info.tool_version.find("sparseplan") == 0);
  CHECK(info.has_lse_stats);
  CHECK_FALSE(info.has_full_lse);
}

TEST_CASE("capture file: one head's block mass reads back as [P*S][nqb][nkb]") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const CaptureInfo written = small_info();
  const std::string path = write_capture(dir / "mass.h5", written);
  const std::array<int, 3> tile = {2, 4, 8};
  const int nb = capture_num_blocks(written, tile);
  CHECK(nb == 2 * 2 * 1);
  const std::vector<float> mass = read_head_block_mass(path, tile, 2, 1);
  REQUIRE(mass.size() == size_t(2 * 3 * nb * nb));
  for (int p = 0; p < 2; ++p)
    for (int s = 0; s < 3; ++s) {
      const std::vector<float> expected = mass_of(nb, 1, p, s, 2, 1);
      const float* got = &mass[size_t((p * 3 + s) * nb * nb)];
      CHECK(std::equal(expected.begin(), expected.end(), got));
    }
  const LseStats stats = read_head_lse_stats(path, tile, 2, 1);
  REQUIRE(stats.mean.size() == size_t(2 * 3 * nb));
  CHECK(stats.mean[size_t((1 * 3 + 2) * nb)] == Approx(100 + 20 + 2 + 0.5));
  CHECK(stats.min[size_t((1 * 3 + 2) * nb)] == Approx(100 + 20 + 2 + 0.5 - 1));
  CHECK(stats.max[size_t((1 * 3 + 2) * nb + 1)] == Approx(100 + 20 + 2 + 0.5 + 1 + 0.25));
  CHECK(read_block_valid(path, tile) == std::vector<int32_t>(size_t(nb), 64));
}

TEST_CASE("capture file: a reader kept open serves many heads and the full LSE") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = write_capture(dir / "full.h5", small_info(1), /*full_lse=*/true);
  const CaptureReader reader(path);
  CHECK(reader.info().has_full_lse);
  const std::vector<float> lse = reader.head_full_lse(1, 1);
  REQUIRE(lse.size() == size_t(3 * 256));
  CHECK(lse[size_t(2 * 256 + 3)] == Approx(0 + 2 + 1 + 1 + 0.75));
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < 2; ++h) CHECK(reader.head_block_mass({4, 4, 4}, l, h).size() == 3 * 16);
}

TEST_CASE("capture file: a subset of layers is addressed by layer number") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  CaptureInfo info = small_info(1);
  info.layers = {0, 2};
  const std::string path = write_capture(dir / "layers.h5", info);
  const CaptureInfo read = read_capture_info(path);
  CHECK(read.layers == std::vector<int>{0, 2});
  const std::vector<float> mass = read_head_block_mass(path, {4, 4, 4}, 2, 0);
  const std::vector<float> expected = mass_of(4, 0, 0, 1, 2, 0);
  CHECK(std::equal(expected.begin(), expected.end(), &mass[size_t(1 * 16)]));
  CHECK_THROWS_WITH(read_head_block_mass(path, {4, 4, 4}, 1, 0), Catch::Contains("not captured"));
  CHECK_THROWS_WITH(read_head_block_mass(path, {4, 4, 4}, 3, 0), Catch::Contains("out of range"));
}

TEST_CASE("capture file: unknown tile, layer or head is rejected naming it") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = write_capture(dir / "bad_index.h5", small_info(1));
  CHECK_THROWS_WITH(read_head_block_mass(path, {1, 8, 8}, 0, 0),
                    Catch::Contains("no tile shape 1x8x8") && Catch::Contains("4x4x4, 2x4x8"));
  CHECK_THROWS_WITH(read_head_block_mass(path, {4, 4, 4}, 0, 2), Catch::Contains("head 2"));
  CHECK_THROWS_AS(read_head_block_mass(path, {4, 4, 4}, -1, 0), std::invalid_argument);
}

TEST_CASE("capture file: a missing file gives a clear error") {
  CHECK_THROWS_WITH(read_capture_info("/nonexistent/run.h5"),
                    Catch::Contains("/nonexistent/run.h5") && Catch::Contains("missing"));
}

TEST_CASE("capture file: a file that is not HDF5 gives a clear error") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const fs::path path = dir / "text.h5";
  std::ofstream(path) << "this is not an HDF5 file\n";
  CHECK_THROWS_WITH(read_capture_info(path.string()), Catch::Contains("not an HDF5 file"));
}

TEST_CASE("capture file: a truncated file gives a clear error") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = write_capture(dir / "whole.h5", small_info());
  const auto size = fs::file_size(path);
  for (double keep : {0.05, 0.5, 0.9}) {
    const fs::path cut = dir / "cut.h5";
    fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, uintmax_t(double(size) * keep));
    INFO("kept " << keep);
    CHECK_THROWS_AS(
        [&] {
          const CaptureReader r(cut.string());
          for (const auto& tile : r.info().tiles)
            for (int l = 0; l < 3; ++l)
              for (int h = 0; h < 2; ++h) r.head_block_mass(tile, l, h);
        }(),
        std::runtime_error);
  }
}

TEST_CASE("capture file: a file not marked complete is refused as incomplete") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = write_capture(dir / "incomplete.h5", small_info());
  set_root_int_attr(path, "complete", 0);
  CHECK_THROWS_WITH(read_capture_info(path), Catch::Contains("incomplete"));
}

TEST_CASE("capture file: another format or a missing dataset is refused naming it") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  {
    const std::string path = write_capture(dir / "other.h5", small_info());
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format");
    H5Fclose(f);
    CHECK_THROWS_WITH(read_capture_info(path), Catch::Contains("not a sparseplan capture"));
  }
  {
    const std::string path = write_capture(dir / "nodata.h5", small_info());
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "tiles/2x4x8/block_mass", H5P_DEFAULT);
    H5Fclose(f);
    CHECK_THROWS_WITH(read_capture_info(path),
                      Catch::Contains("missing dataset /tiles/2x4x8/block_mass"));
  }
  {
    const fs::path plain = dir / "plain.h5";
    const hid_t f = H5Fcreate(plain.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    CHECK_THROWS_WITH(read_capture_info(plain.string()), Catch::Contains("not a sparseplan capture"));
  }
}

TEST_CASE("capture file: a writer dropped before finish() leaves no file at all") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  {
    CaptureWriter w((dir / "dropped.h5").string(), small_info());
    const int nb = capture_num_blocks(w.info(), {4, 4, 4});
    w.write_head_mass({4, 4, 4}, 0, 0, 0, 0, mass_of(nb, 0, 0, 0, 0, 0).data());
  }
  CHECK(files_in(dir).empty());
}

TEST_CASE("capture file: finish() with a head never written fails naming it, and writes nothing") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const fs::path path = dir / "partial.h5";
  CaptureWriter w(path.string(), small_info(1));
  const CaptureInfo& info = w.info();
  for (size_t t = 0; t < info.tiles.size(); ++t) {
    const int nb = capture_num_blocks(info, info.tiles[t]);
    for (int s = 0; s < 3; ++s)
      for (int l = 0; l < 3; ++l)
        for (int h = 0; h < 2; ++h) {
          if (t == 1 && s == 2 && l == 2 && h == 1) continue;
          w.write_head_mass(info.tiles[t], 0, s, l, h, mass_of(nb, int(t), 0, s, l, h).data());
          w.write_lse_stats(info.tiles[t], 0, s, l, h, stat_of(nb, 0).data(), stat_of(nb, 0).data(),
                            stat_of(nb, 0).data());
        }
  }
  CHECK_THROWS_WITH(w.finish(), Catch::Contains("tile 2x4x8") && Catch::Contains("step index 2") &&
                                    Catch::Contains("layer 2") && Catch::Contains("head 1"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("capture file: a process killed mid-capture leaves no complete-looking file") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const fs::path path = dir / "killed.h5";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // No destructors run after _exit: like SIGKILL in the middle of a capture.
    CaptureWriter* w = new CaptureWriter(path.string(), small_info());
    const int nb = capture_num_blocks(w->info(), {4, 4, 4});
    for (int h = 0; h < 2; ++h) w->write_head_mass({4, 4, 4}, 0, 0, 0, h, mass_of(nb, 0, 0, 0, 0, h).data());
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK_FALSE(fs::exists(path));
  const std::vector<fs::path> left = files_in(dir);
  REQUIRE(left.size() == 1);  // the temporary file, named as such
  CHECK(left[0].filename().string().find("killed.h5.tmp-") == 0);
  CHECK_THROWS_AS(read_capture_info(left[0].string()), std::runtime_error);
}

TEST_CASE("capture file: the writer validates its metadata, naming the field") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "invalid.h5").string();
  CaptureInfo info = small_info();
  info.seeds.pop_back();
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("seeds"));
  info = small_info();
  info.steps = {5, 5, 9};
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("steps"));
  info = small_info();
  info.tiles.push_back({8, 8, 8});
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("tile"));
  info = small_info();
  info.tiles.push_back({4, 4, 4});
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("twice"));
  info = small_info();
  info.layers = {0, 3};
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("layers"));
  info = small_info();
  info.sampler_json = "{not json";
  CHECK_THROWS_WITH(CaptureWriter(path, info), Catch::Contains("JSON"));
  CHECK_THROWS_WITH(CaptureWriter((dir / "no/such/dir.h5").string(), small_info()),
                    Catch::Contains("cannot create"));
  CHECK(files_in(dir).empty());
}

TEST_CASE("capture file: writes out of range are rejected") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  CaptureWriter w((dir / "range.h5").string(), small_info());
  const std::vector<float> m(16, 1.0f / 4);
  CHECK_THROWS_WITH(w.write_head_mass({4, 4, 4}, 2, 0, 0, 0, m.data()), Catch::Contains("prompt 2"));
  CHECK_THROWS_WITH(w.write_head_mass({4, 4, 4}, 0, 3, 0, 0, m.data()), Catch::Contains("step index 3"));
  CHECK_THROWS_WITH(w.write_head_mass({4, 4, 4}, 0, 0, 0, 2, m.data()), Catch::Contains("head 2"));
  CHECK_THROWS_WITH(w.write_head_mass({1, 8, 8}, 0, 0, 0, 0, m.data()), Catch::Contains("1x8x8"));
  CHECK_THROWS_AS(w.write_full_lse(0, 0, 0, 0, m.data()), std::logic_error);
}

TEST_CASE("capture file: merging concatenates prompts; mismatched captures are refused") {
  const ScratchDir scratch("capture");
  const fs::path& dir = scratch.path();
  CaptureInfo a = small_info(2);
  CaptureInfo b = small_info(1);
  b.prompts = {"third"};
  b.seeds = {7};
  const std::string pa = write_capture(dir / "a.h5", a);
  const std::string pb = write_capture(dir / "b.h5", b);
  const std::string merged = (dir / "merged.h5").string();
  merge_captures({pa, pb}, merged);
  const CaptureInfo info = read_capture_info(merged);
  CHECK(info.num_prompts == 3);
  CHECK(info.prompts == std::vector<std::string>{"prompt number 0", "prompt number 1", "third"});
  CHECK(info.seeds == std::vector<int64_t>{100, 101, 7});
  const std::vector<float> mass = read_head_block_mass(merged, {4, 4, 4}, 1, 0);
  const std::vector<float> from_b = read_head_block_mass(pb, {4, 4, 4}, 1, 0);
  CHECK(std::equal(from_b.begin(), from_b.end(), mass.begin() + 2 * 3 * 16));

  CaptureInfo c = small_info(1);
  c.grid = {4, 8, 16};
  const std::string pc = write_capture(dir / "c.h5", c);
  CHECK_THROWS_WITH(merge_captures({pa, pc}, (dir / "bad.h5").string()), Catch::Contains("grid"));
  CHECK_FALSE(fs::exists(dir / "bad.h5"));
}

TEST_CASE("capture file: tile names parse and print as TFxTHxTW") {
  CHECK(parse_tile_name("2x4x8") == std::array<int, 3>{2, 4, 8});
  CHECK(tile_name({1, 8, 8}) == "1x8x8");
  for (const char* bad : {"", "4x4", "4x4x4x4", "4x0x4", "axbxc", "4x4x-1", "4x4x4 "})
    CHECK_THROWS_AS(parse_tile_name(bad), std::invalid_argument);
}
