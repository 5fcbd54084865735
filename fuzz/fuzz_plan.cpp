// libFuzzer harness for the plan loader. Any text must either load or be refused with an
// exception; a crash, a sanitizer report or a hang is a bug. A plan that loads must also be
// usable: its tile geometry builds, small plans compile into block layouts, and writing it
// out and reading it back gives the same plan (no silent change).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "plan/block_layout.h"
#include "plan/plan_loader.h"
#include "plan/plan_writer.h"
#include "plan/tile_geometry.h"

namespace {

// Layout compilation is quadratic in the blocks; bigger plans are checked up to the geometry
// so each input stays fast.
constexpr int64_t kMaxCompiledBlocks = 512;
constexpr int64_t kMaxCompiledHeads = 64;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_plan: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparseplan;
  const std::string text(reinterpret_cast<const char*>(data), size);
  Plan plan;
  try {
    plan = plan_from_json_text(text, "fuzz-input");
  } catch (const std::exception&) {
    return 0;
  }

  TileGeometry geometry;
  try {
    geometry = make_tile_geometry(plan);
  } catch (const std::exception& e) {
    fail("a plan the loader accepted has no tile geometry", e.what());
  }
  const int64_t heads = int64_t(plan.layers.size()) * plan.model.heads;
  if (geometry.total_blocks <= kMaxCompiledBlocks && heads <= kMaxCompiledHeads) {
    try {
      make_token_order(geometry);
      for (size_t l = 0; l < plan.layers.size(); ++l) compile_layer_layouts(plan, geometry, int(l));
    } catch (const std::exception& e) {
      fail("a plan the loader accepted does not compile", e.what());
    }
  }

  const std::string written = plan_to_text(plan);
  std::string rewritten;
  try {
    rewritten = plan_to_text(plan_from_json_text(written, "written-plan"));
  } catch (const std::exception& e) {
    fail("a written plan does not load", e.what());
  }
  if (rewritten != written) fail("writing and reloading changed the plan", written);
  return 0;
}
