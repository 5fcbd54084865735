// Loads a plan and compiles one layer through the installed headers and libraries; prints the
// layer's block count and first head's density.
#include <cstdio>

#include "plan/block_layout.h"
#include "plan/plan_loader.h"
#include "plan/tile_geometry.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const sparseplan::Plan plan = sparseplan::load_plan(argv[1]);
  const sparseplan::TileGeometry geometry = sparseplan::make_tile_geometry(plan);
  const auto layouts = sparseplan::compile_layer_layouts(plan, geometry, 0);
  std::printf("blocks %d density %.3f\n", geometry.total_blocks, layouts.at(0).density());
  return 0;
}
