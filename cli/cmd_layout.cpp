#include <chrono>
#include <cstdio>
#include <iostream>

#include "io/block_mask_image.h"
#include "io/svg_plot.h"
#include "cli/commands.h"
#include "plan/block_layout.h"
#include "plan/model_preset.h"
#include "plan/plan_loader.h"

namespace sparseplan::cli {

Command add_layout(CLI::App& app) {
  struct Options {
    std::string plan;
    std::string grid;
    int layer = 0;
    int head = 0;
    std::string png;
    std::string svg;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "layout", "Compile a plan into block layouts: density per layer and head, and a picture");
  sub->add_option("plan", o->plan, "Plan JSON file")->required();
  sub->add_option("--grid", o->grid, "Token grid F,H,W the plan must be for (default: the plan's)");
  sub->add_option("--layer", o->layer, "Layer of the pictured head")->check(CLI::NonNegativeNumber);
  sub->add_option("--head", o->head, "Pictured head")->check(CLI::NonNegativeNumber);
  sub->add_option("--png", o->png, "Write the head's block mask in tile order to this PNG");
  sub->add_option("--svg", o->svg, "Write it as an SVG figure with labelled axes and a legend");
  return {sub, [o]() {
            const Plan plan = load_plan(o->plan);
            if (!o->grid.empty()) {
              const auto errors =
                  check_plan_matches_grid(plan, parse_grid(o->grid), plan.text);
              if (!errors.empty()) throw std::invalid_argument(o->plan + ": " + errors.front());
            }
            if (o->layer >= plan.model.layers || o->head >= plan.model.heads)
              throw std::invalid_argument("--layer/--head: the plan has " +
                                          std::to_string(plan.model.layers) + " layers and " +
                                          std::to_string(plan.model.heads) + " heads");
            const TileGeometry g = make_tile_geometry(plan);
            std::printf("plan %s: %s, grid %dx%dx%d, tile %dx%dx%d, block %d\n", o->plan.c_str(),
                        plan.model.id.c_str(), plan.grid.frames, plan.grid.height,
                        plan.grid.width, plan.tile[0], plan.tile[1], plan.tile[2],
                        plan.block_size);
            std::printf("%d blocks (%d video in %dx%dx%d tiles, %d text), %lld padded tokens for "
                        "%lld\n",
                        g.total_blocks, g.video_blocks, g.tiles_f, g.tiles_h, g.tiles_w,
                        g.text_blocks, static_cast<long long>(g.padded_tokens()),
                        static_cast<long long>(g.sequence_tokens()));
            std::printf("density (kept key blocks / all) per layer and head:\nlayer ");
            for (int h = 0; h < plan.model.heads; ++h) std::printf(" h%-5d", h);
            std::printf("   mean\n");
            double total = 0.0, seconds = 0.0;
            BlockLayout pictured;
            for (int l = 0; l < plan.model.layers; ++l) {
              const auto start = std::chrono::steady_clock::now();
              std::vector<BlockLayout> layouts = compile_layer_layouts(plan, g, l);
              seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                             .count();
              double sum = 0.0;
              std::printf("%5d ", l);
              for (const BlockLayout& b : layouts) {
                std::printf(" %s%.3f", b.kind == RuleKind::Online ? "~" : " ", b.density());
                sum += b.density();
              }
              std::printf("  %.3f\n", sum / double(layouts.size()));
              total += sum;
              if (l == o->layer) pictured = std::move(layouts[size_t(o->head)]);
            }
            std::printf("mean density %.4f over %d heads; compiled in %.3f s\n",
                        total / (double(plan.model.layers) * plan.model.heads),
                        plan.model.layers * plan.model.heads, seconds);
            std::printf("(~ marks online heads: dense until re-selected at run time)\n");
            if (!o->png.empty()) {
              write_block_mask_png(o->png, pictured, g);
              std::printf("wrote %s: layer %d head %d (%s), density %.4f\n", o->png.c_str(),
                          o->layer, o->head, rule_kind_name(pictured.kind), pictured.density());
            }
            if (!o->svg.empty()) {
              write_block_mask_svg(o->svg, pictured, g,
                                   "Block mask, layer " + std::to_string(o->layer) + " head " +
                                       std::to_string(o->head) + " (" + rule_kind_name(pictured.kind) +
                                       ", density " + svg::format_number(pictured.density()) + ")");
              std::printf("wrote %s\n", o->svg.c_str());
            }
            return 0;
          }};
}

}  // namespace sparseplan::cli
