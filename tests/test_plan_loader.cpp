#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "plan/block_layout.h"
#include "plan/model_preset.h"
#include "plan/plan_loader.h"
#include "plan/plan_writer.h"
#include "search/baseline_plans.h"

using namespace sparseplan;
using nlohmann::json;

namespace {

// A small valid plan: 2 layers x 2 heads on a 4 x 8 x 8 grid of 1 x 4 x 4 tiles.
json small_plan() {
  return json::parse(R"({
    "format": "sparseplan/1",
    "model": {"id": "toy", "layers": 2, "heads": 2, "head_dim": 64},
    "grid": {"frames": 4, "height": 8, "width": 8},
    "text": {"position": "none", "tokens": 0},
    "block_size": 16,
    "tile": [1, 4, 4],
    "schedule": {"total_steps": 10, "warmup_steps": 2, "dense_steps": [9], "reselect_steps": [2, 6]},
    "layers": [
      {"heads": [{"rule": "dense"},
                 {"rule": "window", "window": {"groups": [{"max_frame_distance": 1, "tiles": [1, 2]}],
                                               "sink_frames": [0], "global_blocks": [3]},
                  "stats": {"recall": 0.95, "density": 0.4}}]},
      {"heads": [{"rule": "online", "online": {"recall": 0.9, "min_density": 0.1, "max_density": 0.5}},
                 {"rule": "blocks", "blocks": {"rows": [[0],[1],[2],[3],[4],[5],[6],[7],[8],[9],[10],[11],[12],[13],[14],[15]]}}]}
    ]
  })");
}

std::vector<std::string> errors_of(const json& j) {
  Plan plan;
  return parse_plan(j, plan);
}

bool has_error(const json& j, const std::string& text) {
  for (const std::string& e : errors_of(j))
    if (e.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("a valid plan loads with every rule kind") {
  Plan plan;
  REQUIRE(parse_plan(small_plan(), plan).empty());
  CHECK(plan.layers[0][1].kind == RuleKind::Window);
  CHECK(plan.layers[0][1].window.groups[0].tiles_w == 2);
  CHECK(plan.layers[0][1].stats->recall == 0.95);
  CHECK(plan.layers[1][0].online.max_density == 0.5);
  CHECK(plan.layers[1][1].blocks.rows[5] == std::vector<int32_t>{5});
  CHECK(plan.schedule.reselect_steps == std::vector<int>{2, 6});
}

TEST_CASE("writing and reading a plan gives the same plan") {
  const Plan plan = plan_from_json_text(small_plan().dump());
  const Plan again = plan_from_json_text(plan_to_text(plan));
  CHECK(plan_to_json(again) == plan_to_json(plan));
}

TEST_CASE("malformed JSON is reported as such") {
  CHECK_THROWS_WITH(plan_from_json_text("{\"format\": ", "p.json"),
                    Catch::Contains("p.json") && Catch::Contains("malformed JSON"));
}

TEST_CASE("errors name the JSON path of the bad window") {
  json j = small_plan();
  j["layers"][1]["heads"][1] = {{"rule", "window"},
                                {"window", {{"groups", {{{"max_frame_distance", 0}, {"tiles", {1, 1}}},
                                                        {{"max_frame_distance", 1}, {"tiles", {2}}}}}}}};
  CHECK(has_error(j, "layers[1].heads[1].window.groups[1].tiles: expected 2 positive integers"));
}

TEST_CASE("wrong types are rejected") {
  json j = small_plan();
  j["block_size"] = "64";
  j["model"]["heads"] = 2.5;
  CHECK(has_error(j, "block_size: expected one of"));
  CHECK(has_error(j, "model.heads: expected an integer"));
}

TEST_CASE("negative and oversized windows are rejected") {
  json j = small_plan();
  j["layers"][0]["heads"][1]["window"]["groups"][0]["tiles"] = {-1, 2};
  CHECK(has_error(j, "layers[0].heads[1].window.groups[0].tiles: expected 2 positive integers"));
  j["layers"][0]["heads"][1]["window"]["groups"][0]["tiles"] = {3, 2};
  CHECK(has_error(j, "larger than the grid's 2x2 tiles"));
}

TEST_CASE("a plan whose head lists do not match model.heads is rejected") {
  json j = small_plan();
  j["layers"][0]["heads"].push_back({{"rule", "dense"}});
  CHECK(has_error(j, "layers[0].heads: expected 2 heads (model.heads), got 3"));
  j = small_plan();
  j["layers"].erase(1);
  CHECK(has_error(j, "layers: expected 2 layers"));
}

TEST_CASE("a plan for a different head count does not match the model") {
  const Plan plan = plan_from_json_text(small_plan().dump());
  ModelInfo model{"toy", 2, 4, 64};
  const auto errors = check_plan_matches_model(plan, model);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::Contains("2 heads") && Catch::Contains("has 4"));
}

TEST_CASE("a grid that does not match the plan is reported") {
  const Plan plan = plan_from_json_text(small_plan().dump());
  CHECK(check_plan_matches_grid(plan, {4, 8, 8}, {}).empty());
  const auto errors = check_plan_matches_grid(plan, {8, 8, 8}, {});
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::Contains("4x8x8") && Catch::Contains("8x8x8"));
}

TEST_CASE("unknown fields, bad rules and bad references are each reported") {
  json j = small_plan();
  j["tile_shape"] = {1, 2, 3};
  j["layers"][0]["heads"][0] = {{"rule", "sparse"}};
  j["layers"][0]["heads"][1]["window"]["sink_frames"] = {7};
  j["layers"][1]["heads"][0]["online"]["min_density"] = 0.9;
  j["layers"][1]["heads"][1]["blocks"]["rows"][2] = {3, 1};
  const auto errors = errors_of(j);
  CHECK(errors.size() == 5);
  CHECK(has_error(j, "tile_shape: unknown field"));
  CHECK(has_error(j, "layers[0].heads[0].rule: expected one of"));
  CHECK(has_error(j, "layers[0].heads[1].window.sink_frames: expected a list of tile-frame indices in [0, 4)"));
  CHECK(has_error(j, "layers[1].heads[0].online: min_density must not exceed max_density"));
  CHECK(has_error(j, "layers[1].heads[1].blocks.rows[2]: expected strictly increasing"));
}

TEST_CASE("a wrong format string and a missing file are clear errors") {
  json j = small_plan();
  j["format"] = "other/2";
  CHECK(has_error(j, "format: expected \"sparseplan/1\""));
  CHECK_THROWS_WITH(load_plan("/nonexistent/plan.json"), Catch::Contains("/nonexistent/plan.json"));
}

TEST_CASE("text layouts must be consistent") {
  json j = small_plan();
  j["text"] = {{"position", "before"}, {"tokens", 0}};
  CHECK(has_error(j, "text.tokens: expected 0 exactly when position is \"none\""));
  j["text"] = {{"position", "middle"}, {"tokens", 4}};
  CHECK(has_error(j, "text.position"));
}

TEST_CASE("the shipped example plans are valid and compile") {
  const std::filesystem::path dir = configs_dir() + "/plans";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path());
    const Plan plan = load_plan(entry.path().string());
    const TileGeometry g = make_tile_geometry(plan);
    CHECK(compile_layer_layouts(plan, g, 0).size() == size_t(plan.model.heads));
    ++count;
  }
  CHECK(count >= 3);
}

TEST_CASE("baseline plans for every model preset are valid") {
  for (const std::string& name : list_model_presets()) {
    const ModelPreset preset = load_model_preset(name);
    for (auto kind : {BaselineKind::SlidingTile, BaselineKind::Radial, BaselineKind::SpatialTemporal}) {
      INFO(name << " " << baseline_kind_name(kind));
      BaselineOptions o;
      o.kind = kind;
      const Plan plan = make_baseline_plan(preset, preset.grids.begin()->second, o);
      Plan again;
      CHECK(parse_plan(json::parse(plan_to_text(plan)), again).empty());
    }
  }
}

TEST_CASE("an unknown model preset lists the known ones") {
  CHECK_THROWS_WITH(load_model_preset("wan9"), Catch::Contains("wan2.1-1.3b"));
}

TEST_CASE("writing a plan replaces the file atomically") {
  const std::string path = (std::filesystem::temp_directory_path() / "sparseplan_atomic.json").string();
  const Plan plan = plan_from_json_text(small_plan().dump());
  write_plan(path, plan);
  CHECK(load_plan(path).model.id == "toy");
  CHECK_THROWS(write_plan("/nonexistent-dir/plan.json", plan));
  std::filesystem::remove(path);
}

TEST_CASE("pooled compensation is read, written back, and absent means none") {
  Plan plain;
  REQUIRE(parse_plan(small_plan(), plain).empty());
  CHECK(plain.compensation == Compensation::None);
  CHECK_FALSE(plan_to_json(plain).contains("compensation"));
  json j = small_plan();
  j["compensation"] = "pooled_kv";
  const Plan plan = plan_from_json_text(j.dump());
  CHECK(plan.compensation == Compensation::PooledKV);
  CHECK(plan_from_json_text(plan_to_text(plan)).compensation == Compensation::PooledKV);
}

TEST_CASE("an unknown compensation is rejected naming the field") {
  json j = small_plan();
  j["compensation"] = "mean";
  CHECK(has_error(j, "compensation: expected \"none\", \"pooled_kv\" or \"residual_cache\", "
                    "got \"mean\""));
  j["compensation"] = 1;
  CHECK(has_error(j, "compensation: expected a string"));
}

TEST_CASE("residual_cache and its refresh steps are read and written back") {
  json j = small_plan();
  j["compensation"] = "residual_cache";
  j["schedule"]["refresh_steps"] = {3, 6};
  const Plan plan = plan_from_json_text(j.dump());
  CHECK(plan.compensation == Compensation::ResidualCache);
  CHECK(plan.schedule.refresh_steps == std::vector<int>{3, 6});
  const Plan again = plan_from_json_text(plan_to_text(plan));
  CHECK(again.compensation == Compensation::ResidualCache);
  CHECK(again.schedule.refresh_steps == std::vector<int>{3, 6});
}

TEST_CASE("refresh steps without residual_cache are rejected naming the field") {
  json j = small_plan();
  j["schedule"]["refresh_steps"] = {3};
  CHECK(has_error(j, "schedule.refresh_steps: refresh steps need compensation \"residual_cache\""));
}
