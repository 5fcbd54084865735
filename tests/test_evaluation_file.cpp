// Results of `sparseplan evaluate` read back for the report: required and optional fields, the
// infinite PSNR of an identical video, and errors that name the entry and the field.
#include <cmath>
#include <string>

#include "base/atomic_file.h"
#include "io/evaluation_file.h"
#include "scratch_dir.h"

#include <catch2/catch.hpp>

using namespace sparseplan;

namespace {

std::string write(const ScratchDir& dir, const std::string& text) {
  const std::string path = dir.path().string() + "/evaluate.json";
  write_text_atomically(path, text);
  return path;
}

}  // namespace

TEST_CASE("an evaluation file gives every plan's fields") {
  ScratchDir dir("evaluation");
  const auto rows = read_evaluation_file(write(dir, R"([
    {"plan": "recall-0.9", "density": 0.86, "psnr_mean": 20.6, "psnr_worst": 18.1, "ssim": 0.71,
     "rel_l2": 0.12, "predicted_ms": 3.5, "measured_ms": 3.9},
    {"plan": "warm-up", "density": 0.89, "psnr_mean": 31.2}])"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].plan == "recall-0.9");
  CHECK(rows[0].density == 0.86);
  CHECK(rows[0].psnr_worst == 18.1);
  CHECK(rows[0].measured_ms == 3.9);
  CHECK(rows[1].psnr_mean == 31.2);
  CHECK(std::isnan(rows[1].ssim));
  CHECK(std::isnan(rows[1].predicted_ms));
}

TEST_CASE("an evaluation file may hold its rows under plans") {
  ScratchDir dir("evaluation");
  const auto rows = read_evaluation_file(write(dir, R"({"plans": [{"plan": "a", "density": 0.5, "psnr_mean": 25}]})"));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].plan == "a");
}

TEST_CASE("an evaluation file may hold its rows under rows, as evaluate's results.json does") {
  ScratchDir dir("evaluation");
  const auto rows = read_evaluation_file(write(dir, R"({"settings": "wan-mini", "columns": ["plan"],
    "rows": [{"plan": "dense", "density": 1.0, "psnr_mean": null, "psnr_worst": null},
             {"plan": "b", "density": 0.5, "psnr_mean": 25, "psnr_worst": 24}]})"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].plan == "b");
  CHECK(std::isinf(rows[0].psnr_mean));
}

TEST_CASE("a null or inf PSNR reads as an identical video") {
  ScratchDir dir("evaluation");
  const auto rows = read_evaluation_file(write(dir, R"([
    {"plan": "dense", "density": 1.0, "psnr_mean": null, "psnr_worst": "inf"}])"));
  CHECK(std::isinf(rows[0].psnr_mean));
  CHECK(std::isinf(rows[0].psnr_worst));
}

TEST_CASE("a bad evaluation file is reported naming the file, the entry and the field") {
  ScratchDir dir("evaluation");
  const std::string path = dir.path().string() + "/evaluate.json";
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, R"([{"plan": "a", "psnr_mean": 20}])")),
                    path + ": [0].density: missing");
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, R"([{"plan": "a", "density": 0.5, "psnr_mean": 1}, {"plan": "b", "density": "x", "psnr_mean": 2}])")),
                    path + ": [1].density: expected a number");
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, R"([{"density": 0.5, "psnr_mean": 20}])")),
                    path + ": [0].plan: expected the plan's name as a non-empty string");
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, R"([{"plan": "a", "density": -0.5, "psnr_mean": 20}])")),
                    path + ": [0].density: negative");
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, "[]")), path + ": holds no plan results");
  CHECK_THROWS_WITH(read_evaluation_file(write(dir, "{\"plan\": 1")), Catch::StartsWith(path + ": not valid JSON"));
  CHECK_THROWS_WITH(read_evaluation_file(dir.path().string() + "/missing.json"), Catch::Contains(dir.path().string() + "/missing.json"));
}
