// The size limits of plan/limits.h and the strict plan parser: every count derived from a grid,
// tile and block size is computed in 64 bits and checked before anything is allocated, and a
// plan's JSON is refused, at its JSON path, where nlohmann would accept it silently.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analyzer/mass_source.h"
#include "io/capture_file.h"
#include "plan/limits.h"
#include "plan/model_preset.h"
#include "plan/plan_loader.h"
#include "plan/tile_geometry.h"
#include "scratch_dir.h"

using namespace sparseplan;
namespace fs = std::filesystem;

namespace {

// A valid one-layer, one-head dense plan; tests change one field.
nlohmann::json dense_plan() {
  return nlohmann::json::parse(R"({
    "format": "sparseplan/1",
    "model": {"id": "toy", "layers": 1, "heads": 1, "head_dim": 64},
    "grid": {"frames": 4, "height": 16, "width": 16},
    "block_size": 64,
    "tile": [1, 8, 8],
    "layers": [{"heads": [{"rule": "dense"}]}]
  })");
}

std::string plan_errors(const std::string& text) {
  try {
    plan_from_json_text(text, "plan.json");
  } catch (const PlanError& e) {
    return e.what();
  }
  return "";
}

CaptureInfo toy_capture_info() {
  CaptureInfo info;
  info.model = {"toy", 1, 1, 16};
  info.grid = {4, 16, 16};
  info.block_size = 64;
  info.tiles = {{1, 8, 8}};
  info.num_prompts = 1;
  info.prompts = {"a prompt"};
  info.seeds = {1};
  info.steps = {0};
  info.timesteps = {1000.0};
  return info;
}

// A complete capture of toy_capture_info() whose block mass rows are uniform (sum to 1).
std::string write_toy_capture(const fs::path& path) {
  const CaptureInfo info = toy_capture_info();
  CaptureWriter::Options options;
  options.lse_stats = false;
  CaptureWriter w(path.string(), info, options);
  const int nb = capture_num_blocks(info, info.tiles[0]);
  const std::vector<float> mass(size_t(nb) * size_t(nb), 1.0f / float(nb));
  w.write_head_mass(info.tiles[0], 0, 0, 0, 0, mass.data());
  w.finish();
  return path.string();
}

void set_root_int64_array(const std::string& path, const char* name,
                          const std::vector<int64_t>& values) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, H5T_NATIVE_INT64, values.data()) >= 0);
  H5Aclose(a);
  H5Fclose(f);
}

void zero_dataset(const std::string& path, const std::string& name) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t space = H5Dget_space(d);
  const std::vector<float> zeros(size_t(H5Sget_simple_extent_npoints(space)), 0.0f);
  REQUIRE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data()) >= 0);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
}

}  // namespace

TEST_CASE("a grid whose tile count wraps 32 bits is refused naming the token limit", "[limits]") {
  // 50020 x 17173 x 5 single-token tiles: 4,294,967,300 tiles, 4 past 2^32; int arithmetic
  // wrapped it to 4 blocks before.
  CHECK_THROWS_WITH(make_tile_geometry({50020, 17173, 5}, {1, 1, 1}, 16, {}),
                    Catch::Contains("grid: 50020x17173x5") &&
                        Catch::Contains("more than the limit of 16777216"));
}

TEST_CASE("a grid beyond the extent limit is refused naming the axis", "[limits]") {
  CHECK_THROWS_WITH(make_tile_geometry({65537, 8, 8}, {1, 8, 8}, 64, {}),
                    Catch::Contains("grid.frames") && Catch::Contains("65536"));
}

TEST_CASE("a 65536 cubed grid is refused rather than counted as 0 blocks", "[limits]") {
  CHECK_THROWS_WITH(make_tile_geometry({65536, 65536, 65536}, {1, 8, 8}, 64, {}),
                    Catch::Contains("more than the limit"));
}

TEST_CASE("the block limit is exact: 32768 blocks pass and one tile more is refused",
          "[limits]") {
  const GeometryCounts at = check_geometry({32, 32, 32}, {1, 1, 1}, 16, {});
  CHECK(at.total_blocks == kMaxBlocks);
  CHECK(at.padded_tokens == int64_t(kMaxBlocks) * 16);
  CHECK_THROWS_WITH(check_geometry({33, 32, 32}, {1, 1, 1}, 16, {}),
                    Catch::Contains("makes 33792 blocks, more than the limit of 32768"));
}

TEST_CASE("text blocks count toward the block limit", "[limits]") {
  // 31744 video blocks; 16384 text tokens make 1024 more blocks, 16385 make 1025.
  CHECK(check_geometry({32, 32, 31}, {1, 1, 1}, 16, {TextPosition::After, 16384}).total_blocks ==
        kMaxBlocks);
  CHECK_THROWS_WITH(check_geometry({32, 32, 31}, {1, 1, 1}, 16, {TextPosition::After, 16385}),
                    Catch::Contains("more than the limit of 32768"));
}

TEST_CASE("geometry counts match the tile geometry the runtime uses", "[limits]") {
  const GeometryCounts c = check_geometry({21, 30, 52}, {4, 4, 4}, 64, {TextPosition::Before, 70});
  const TileGeometry g = make_tile_geometry({21, 30, 52}, {4, 4, 4}, 64, {TextPosition::Before, 70});
  CHECK(c.tiles == g.num_tiles());
  CHECK(c.video_blocks == g.video_blocks);
  CHECK(c.text_blocks == g.text_blocks);
  CHECK(c.total_blocks == g.total_blocks);
  CHECK(c.padded_tokens == g.padded_tokens());
  CHECK(c.sequence_tokens == g.sequence_tokens());
}

TEST_CASE("a block size beyond 256 is refused naming block_size", "[limits]") {
  CHECK_THROWS_WITH(check_geometry({4, 16, 16}, {1, 8, 8}, 512, {}),
                    Catch::Contains("block_size"));
}

TEST_CASE("block mass sizes are checked against the limit before allocating", "[limits]") {
  CHECK(check_mass_size(3, 100, "mass") == 30000);
  CHECK(check_mass_size(1, 1 << 16, "mass") == int64_t(1) << 32);  // exactly 16 GiB
  CHECK_THROWS_WITH(check_mass_size(2, 1 << 16, "mass of head 0"),
                    Catch::Contains("mass of head 0") && Catch::Contains("16 GiB"));
}

TEST_CASE("block mass sizes that overflow 64 bits are refused as over the limit", "[limits]") {
  CHECK_THROWS_WITH(check_mass_size(std::numeric_limits<int64_t>::max(), 1 << 20, "mass"),
                    Catch::Contains("exceed the limit"));
}

TEST_CASE("model shapes beyond the limits are refused naming the field", "[limits]") {
  CHECK_NOTHROW(check_model_shape(40, 40, 128, "model."));
  CHECK_THROWS_WITH(check_model_shape(int64_t(1) << 31, 40, 128, "model."),
                    Catch::Contains("model.layers"));
  CHECK_THROWS_WITH(check_model_shape(40, 40, 2048, "model."), Catch::Contains("model.head_dim"));
}

TEST_CASE("validate refuses a plan whose geometry exceeds the limits", "[limits]") {
  nlohmann::json plan = dense_plan();
  plan["grid"] = {{"frames", 50020}, {"height", 17173}, {"width", 5}};
  plan["tile"] = {1, 1, 1};
  plan["block_size"] = 16;
  Plan parsed;
  const std::vector<std::string> errors = parse_plan(plan, parsed);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::StartsWith("grid: 50020x17173x5") &&
                            Catch::Contains("more than the limit"));
}

TEST_CASE("a grid argument beyond the limit is refused naming the axis", "[limits]") {
  CHECK_THROWS_WITH(parse_grid("99999999999,1,1"),
                    Catch::Contains("frames 99999999999 exceeds the limit of 65536"));
  CHECK_THROWS_WITH(parse_grid("4,65537,1"), Catch::Contains("height 65537"));
  CHECK(parse_grid("21,30,52") == (Grid{21, 30, 52}));
}

TEST_CASE("a duplicate key in a plan is refused at its JSON path", "[plan][strict]") {
  std::string text = dense_plan().dump();
  text.replace(text.find("\"heads\":1"), 9, "\"heads\":1,\"heads\":2");
  CHECK_THAT(plan_errors(text), Catch::Contains("plan.json") &&
                                    Catch::Contains("model.heads: duplicate key"));
}

TEST_CASE("a duplicate key inside a list is refused with the element's index", "[plan][strict]") {
  nlohmann::json plan = dense_plan();
  plan["model"]["heads"] = 2;
  plan["layers"][0]["heads"] = {{{"rule", "dense"}}, {{"rule", "dense"}}};
  std::string text = plan.dump();
  const size_t second = text.find("{\"rule\":\"dense\"}", text.find("{\"rule\":\"dense\"}") + 1);
  text.replace(second, 16, "{\"rule\":\"dense\",\"rule\":\"dense\"}");
  CHECK_THAT(plan_errors(text), Catch::Contains("layers[0].heads[1].rule: duplicate key"));
}

TEST_CASE("a NUL inside a plan string is refused at its JSON path", "[plan][strict]") {
  std::string text = dense_plan().dump();
  text.replace(text.find("\"toy\""), 5, "\"to\\u0000y\"");
  CHECK_THAT(plan_errors(text), Catch::Contains("model.id: control character in a string"));
}

TEST_CASE("a control character in a key is refused and shown escaped", "[plan][strict]") {
  std::string text = dense_plan().dump();
  text.replace(text.find("\"tile\""), 6, "\"ti\\u0001le\"");
  const std::string errors = plan_errors(text);
  CHECK_THAT(errors, Catch::Contains("ti\\u0001le: control character in a field name"));
  CHECK(errors.find('\x01') == std::string::npos);
}

TEST_CASE("a plan description may hold newlines and tabs but no other control character",
          "[plan][strict]") {
  nlohmann::json plan = dense_plan();
  plan["description"] = "first line\n\tsecond line";
  CHECK_NOTHROW(plan_from_json_text(plan.dump(), "plan.json"));
  plan["description"] = std::string("bell\a");
  CHECK_THAT(plan_errors(plan.dump()), Catch::Contains("description: control character"));
}

TEST_CASE("a number overflowing a double names the plan file and the JSON path",
          "[plan][strict]") {
  std::string text = dense_plan().dump();
  text.replace(text.find("\"layers\":["), 10,
               "\"search\":{\"target_recall\":1e999},\"layers\":[");
  CHECK_THAT(plan_errors(text), Catch::Contains("plan.json") &&
                                    Catch::Contains("search.target_recall: malformed JSON") &&
                                    Catch::Contains("number overflow"));
}

TEST_CASE("a syntax error names the JSON path it was met at", "[plan][strict]") {
  CHECK_THAT(plan_errors(R"({"format": "sparseplan/1", "model": {"id": "toy", "layers": })"),
             Catch::Contains("model.layers: malformed JSON"));
}

TEST_CASE("a directory given as a plan is called a directory", "[plan][strict]") {
  const ScratchDir scratch("plan_dir");
  CHECK_THROWS_WITH(load_plan(scratch.path().string()),
                    Catch::Contains(scratch.path().string() + ": is a directory"));
}

TEST_CASE("a capture whose geometry exceeds the limits is refused before any read",
          "[limits][capture]") {
  const ScratchDir scratch("capture_limits");
  const std::string path = write_toy_capture(scratch.path() / "toy.h5");
  // 1024 x 1024 x 8 tokens in 1x8x8 tiles: 131072 blocks, within the token limit.
  set_root_int64_array(path, "grid", {1024, 1024, 8});
  CHECK_THROWS_WITH(CaptureReader(path), Catch::Contains(path) &&
                                             Catch::Contains("more than the limit of 32768"));
}

TEST_CASE("a capture whose grid wraps 32-bit tile counts is refused", "[limits][capture]") {
  const ScratchDir scratch("capture_wrap");
  const std::string path = write_toy_capture(scratch.path() / "toy.h5");
  set_root_int64_array(path, "grid", {65536, 65536, 65536});
  CHECK_THROWS_WITH(CaptureReader(path), Catch::Contains("more than the limit"));
}

TEST_CASE("search input with all-zero block mass is refused naming the capture and block",
          "[capture][mass]") {
  const ScratchDir scratch("capture_zero");
  const std::string path = write_toy_capture(scratch.path() / "zero.h5");
  zero_dataset(path, "tiles/1x8x8/block_mass");
  const CaptureSet source(std::vector<std::string>{path});
  CHECK_THROWS_WITH(source.head_mass({1, 8, 8}, 0, 0),
                    Catch::Contains(path) && Catch::Contains("layer 0, head 0") &&
                        Catch::Contains("query block 0: row sums to 0"));
}

TEST_CASE("block mass rows that sum to 1 pass the row check", "[capture][mass]") {
  const ScratchDir scratch("capture_ok");
  const std::string path = write_toy_capture(scratch.path() / "ok.h5");
  const CaptureSet source(std::vector<std::string>{path});
  const HeadMass mass = source.head_mass({1, 8, 8}, 0, 0);
  CHECK(mass.samples == 1);
  CHECK(mass.blocks == 16);
}
