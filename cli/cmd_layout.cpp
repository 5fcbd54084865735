#include <chrono>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "cli/commands.h"
#include "io/block_mask_image.h"
#include "io/safetensors.h"
#include "io/svg_plot.h"
#include "plan/block_layout.h"
#include "plan/model_preset.h"
#include "plan/padding_cost.h"
#include "plan/plan_loader.h"
#include "plan/query_pairs.h"

namespace sparseplan::cli {
namespace {

torch::Tensor int64_tensor(const std::vector<int32_t>& values) {
  torch::Tensor t = torch::empty({int64_t(values.size())}, torch::kInt64);
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

// One layer's layouts as the kernels take them (row_offsets [H, nb + 1], global offsets into one
// col_indices; q_pair_order [H, nb] for 64-token blocks, plan/query_pairs.h), the token order
// to gather into tile order and back, and the valid tokens per block. Stored as I64 (the project's safetensors writer has no I32); readers cast to int32.
// Online heads are compiled dense, as they run until their first selection.
void export_layouts(const std::string& path, const Plan& plan, const TileGeometry& g, int layer,
                    const std::vector<BlockLayout>& heads) {
  const TokenOrder order = make_token_order(g);
  std::vector<int32_t> ro, ci, pairs;
  std::vector<double> density;
  for (const BlockLayout& b : heads) {
    const int32_t base = int32_t(ci.size());
    for (int32_t r : b.row_offsets) ro.push_back(base + r);
    ci.insert(ci.end(), b.col_indices.begin(), b.col_indices.end());
    density.push_back(b.density());
    const std::vector<int32_t> order = pair_query_blocks(b, g);
    pairs.insert(pairs.end(), order.begin(), order.end());
  }
  const std::string grid = std::to_string(g.grid.frames) + "," + std::to_string(g.grid.height) +
                           "," + std::to_string(g.grid.width);
  const std::string tile = std::to_string(g.tile[0]) + "x" + std::to_string(g.tile[1]) + "x" +
                           std::to_string(g.tile[2]);
  write_safetensors(
      path,
      {{"token_of_slot", int64_tensor(order.token_of_slot)},
       {"slot_of_token", int64_tensor(order.slot_of_token)},
       {"block_valid", int64_tensor(order.block_valid)},
       {"row_offsets", int64_tensor(ro).view({int64_t(heads.size()), g.total_blocks + 1})},
       {"col_indices", int64_tensor(ci)},
       {"q_pair_order", int64_tensor(pairs).view({int64_t(heads.size()), g.total_blocks})},
       {"density", torch::tensor(density, torch::kFloat64).to(torch::kFloat32)}},
      {{"model", plan.model.id},
       {"layer", std::to_string(layer)},
       {"heads", std::to_string(plan.model.heads)},
       {"head_dim", std::to_string(plan.model.head_dim)},
       {"grid", grid},
       {"tile", tile},
       {"block_size", std::to_string(g.block_size)},
       {"blocks", std::to_string(g.total_blocks)},
       {"tokens", std::to_string(g.sequence_tokens())},
       {"text_tokens", std::to_string(g.text.tokens)},
       {"text_position", text_position_name(g.text.position)},
       {"online_heads", "compiled dense"},
       {"plan", plan.description},
       {"tool", std::string("sparseplan ") + SPARSEPLAN_VERSION + " layout"}});
}

}  // namespace

Command add_layout(CLI::App& app) {
  struct Options {
    std::string plan;
    std::string grid;
    int layer = 0;
    int head = 0;
    std::string png;
    std::string svg;
    std::string export_csr;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "layout", "Compile a plan into block layouts: density per layer and head, and a picture");
  sub->add_option("plan", o->plan, "Plan JSON file")->required();
  sub->add_option("--grid", o->grid, "Token grid F,H,W the plan must be for (default: the plan's)");
  sub->add_option("--layer", o->layer, "Layer of the pictured head and of --export-csr")->check(CLI::NonNegativeNumber);
  sub->add_option("--head", o->head, "Pictured head")->check(CLI::NonNegativeNumber);
  sub->add_option("--png", o->png, "Write the head's block mask in tile order to this PNG");
  sub->add_option("--svg", o->svg, "Write it as an SVG figure with labelled axes and a legend");
  sub->add_option("--export-csr", o->export_csr,
                  "Write the block layouts (CSR) and pair orders of --layer's heads, the token "
                  "order and the valid tokens per block to this safetensors file (for "
                  "bench/plan_masks.py)");
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
            const PaddingCost padding = padding_cost(g);
            std::printf("padding: %lld slots, %.1f%% of the tokens; %d partial blocks (%d "
                        "empty); every block costs %.3fx its share of dense attention\n",
                        static_cast<long long>(padding.padding()),
                        100.0 * padding.padded_fraction(), padding.partial_blocks,
                        padding.empty_blocks, padding.work_factor());
            std::printf("density (kept key blocks / all) per layer and head:\nlayer ");
            for (int h = 0; h < plan.model.heads; ++h) std::printf(" h%-5d", h);
            std::printf("   mean\n");
            double total = 0.0, seconds = 0.0;
            // 64-token query blocks run in pairs on Hopper: 128 x 128 stages walked per layout.
            const bool paired = plan.block_size == 64;
            int64_t consecutive_stages = 0, ordered_stages = 0, kept = 0;
            BlockLayout pictured;
            std::vector<BlockLayout> chosen_layer;
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
                if (paired && b.kind != RuleKind::Online) {
                  std::vector<int32_t> consecutive(static_cast<size_t>(b.num_q_blocks));
                  std::iota(consecutive.begin(), consecutive.end(), 0);
                  consecutive_stages += paired_stages(b, consecutive);
                  ordered_stages += paired_stages(b, pair_query_blocks(b, g));
                  kept += b.nnz();
                }
              }
              std::printf("  %.3f\n", sum / double(layouts.size()));
              total += sum;
              if (l == o->layer) {
                pictured = layouts[size_t(o->head)];
                chosen_layer = std::move(layouts);
              }
            }
            const double mean = total / (double(plan.model.layers) * plan.model.heads);
            std::printf("mean density %.4f over %d heads; compiled in %.3f s\n", mean,
                        plan.model.layers * plan.model.heads, seconds);
            std::printf("work with padding: %.4f of dense attention on the model's tokens "
                        "(mean density x %.3f)\n",
                        padding.cost(mean), padding.work_factor());
            std::printf("(~ marks online heads: dense until re-selected at run time)\n");
            if (paired && consecutive_stages > 0)
              std::printf("paired 64-token query blocks (Hopper kernels, static heads): %lld "
                          "stages of 128 x 128 with consecutive pairs, %lld with the pair orders "
                          "(%.1f%% fewer); the kept blocks fill %.1f%% of them\n",
                          static_cast<long long>(consecutive_stages),
                          static_cast<long long>(ordered_stages),
                          100.0 * (1.0 - double(ordered_stages) / double(consecutive_stages)),
                          100.0 * double(kept) / (4.0 * double(ordered_stages)));
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
            if (!o->export_csr.empty()) {
              export_layouts(o->export_csr, plan, g, o->layer, chosen_layer);
              std::printf("wrote %s: layouts of layer %d (%d heads), token order, valid tokens "
                          "per block\n",
                          o->export_csr.c_str(), o->layer, plan.model.heads);
            }
            return 0;
          }};
}

}  // namespace sparseplan::cli
