// The plan backend: an AttentionFn that runs a sparsity plan inside the model runner.
// Calls outside sampling (step < 0), warm-up steps and the schedule's dense_steps run dense
// attention (runtime/dense_backend.h: the dense kernel on CUDA). Every other call reorders q, k,
// v into the plan's padded tile order, runs block-sparse attention with the layer's compiled
// layouts (CUDA kernels on CUDA tensors, plain LibTorch ops otherwise) and reorders the output
// back, unless the kernels read the call's order themselves: the tile-major order
// (stream_order), in which a runner can keep its whole token stream, or model order on sparse
// layers (PlanRunOptions::fused_max_density).
// Online heads select their key blocks at the schedule's reselect_steps (and at their first
// sparse step when no reselect step came before): dense attention with LSE for those heads
// (its output is used for that call), exact block mass, per query block the fewest key blocks
// reaching the rule's recall within its densities, text blocks always kept. The selection is
// kept per (layer, guidance branch) until the next reselect step.
// With compensation residual_cache, refresh calls (the last warm-up step, dense steps, refresh
// steps) run each layout and its complement and merge them by their LSEs, which is dense
// attention, and keep per (layer, branch) the complement's output and its softmax weight per
// query row; sparse calls then mix the cached share in with that weight. Online heads keep no
// cached share (their layouts change at every selection).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/attention_backend.h"
#include "plan/block_layout.h"
#include "plan/plan.h"
#include "plan/tile_geometry.h"
#include "runtime/dense_backend.h"

namespace sparseplan {

class AttentionProfile;
class BlockMassComputer;

struct PlanRunOptions {
  // Kernels: dense calls, online selections and sparse calls on the CUDA kernels where they run.
  // Reference: everything in float32 LibTorch (known-answer tests).
  AttentionImpl attention = AttentionImpl::Kernels;
  // When set (it must outlive the backend), books dense and sparse calls, the reorder into tile
  // order and back, and online selections.
  AttentionProfile* profile = nullptr;
  // On the kernels, a layer whose first sparse call comes in model order and attends at most
  // this fraction of its blocks runs in the fused tile order (no reorder pass; see
  // PlanBackend::sparse); 0 never, 1 wherever the plan allows it. At Wan 480p the fused call
  // beat gather + kernel + scatter on every plan mask of density <= 0.25 at both block sizes
  // and lost 4% on the 64-token radial one at 0.54 (bench/RESULTS.md, "Drawn work items").
  double fused_max_density = 0.3;
  // With 64-token blocks on the kernels, which query blocks share a tile: the static heads'
  // pair orders (plan/query_pairs.h), or, false, consecutive blocks (for comparison).
  bool pair_query_blocks = true;
};

struct PlanRunStats {
  int64_t dense_calls = 0;    // calls the schedule ran dense (warm-up, dense steps, step < 0)
  int64_t sparse_calls = 0;   // calls on sparse steps
  int64_t reselections = 0;   // online selections made, one per (layer, branch, reselect step)
  double sparse_density_sum = 0.0;  // per sparse call: kept blocks / all blocks, over heads

  // Mean fraction of key blocks attended over the sparse calls (online heads count as dense
  // at the call that selects them); 0 without sparse calls.
  double mean_sparse_density() const;
  // The same over all calls, dense calls counting 1.
  double mean_density() const;
};

// One line, e.g. "plan: 96 dense calls, 384 sparse calls (mean density 0.231), 48 online
// selections; overall density 0.385".
std::string format_plan_stats(const PlanRunStats& stats);

class PlanBackend {
 public:
  // Throws std::invalid_argument when the plan's tile geometry is unusable.
  explicit PlanBackend(Plan plan, PlanRunOptions options = {});
  ~PlanBackend();
  PlanBackend(const PlanBackend&) = delete;
  PlanBackend& operator=(const PlanBackend&) = delete;

  // Hands the runner this function. A call whose grid, text layout, heads, head_dim, token
  // count or layer does not fit the plan throws std::invalid_argument naming the mismatch.
  AttentionFn attention();

  // The function's body, for direct use. Returns float32 [B, N, H, D] like dense_attention.
  torch::Tensor operator()(const AttentionCall& call, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v);

  // Throws std::invalid_argument listing every way the plan does not fit the model's shape.
  void check_model(const ModelInfo& model) const;

  // The order to run the model's token stream in on `device` (SampleOptions::token_order):
  // the plan's tile-major order (tile_major_tokens), int64 [tokens], where the kernels attend
  // in it directly (CUDA kernels, one block per tile, no text, no pooled compensation), so that
  // sparse calls reorder nothing; undefined elsewhere (run in model order). Calls may come in
  // model order or in this order; any other order is refused.
  torch::Tensor stream_order(const torch::Device& device);

  // Whether the schedule runs this call dense (refresh calls included).
  bool runs_dense(const AttentionCall& call) const;
  // Whether this call refreshes the residual cache (compensation residual_cache only).
  bool refreshes(const AttentionCall& call) const;

  // The current online selection of (layer, branch): per batch element and online head
  // (batch-major, heads in increasing order) a layout over the padded blocks, and the step it
  // was made at; nullptr before the first selection.
  struct OnlineSelection {
    int step = -1;
    int64_t batch = 0;
    std::vector<int> heads;             // the layer's online heads
    std::vector<BlockLayout> layouts;   // [batch * heads.size()]
  };
  const OnlineSelection* online_selection(int layer, int branch) const;

  const Plan& plan() const { return plan_; }
  const TileGeometry& geometry() const { return geometry_; }
  const PlanRunStats& stats() const { return stats_; }

 private:
  struct LayerPlan;
  struct DeviceLayout;
  struct DeviceOrder;
  struct CachedShare;

  void check_call(const AttentionCall& call, const torch::Tensor& q, const torch::Tensor& k,
                  const torch::Tensor& v) const;
  const LayerPlan& layer_plan(int layer);
  const DeviceOrder& device_order(const torch::Device& device);
  void reselect(const AttentionCall& call, const LayerPlan& lp, const torch::Tensor& q,
                const torch::Tensor& k, const torch::Tensor& v, torch::Tensor& online_out);
  torch::Tensor dense(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  torch::Tensor sparse(const AttentionCall& call, const LayerPlan& lp, const torch::Tensor& q,
                       const torch::Tensor& k, const torch::Tensor& v, bool refresh);
  // How a layer's sparse calls run on the kernels: gathered into the padded tile order, or
  // with the kernels reading model order or tile-major order (one block per tile, no text).
  enum class KernelOrder { Gathered, ModelOrder, TileMajor };
  // sparse where the kernels read and write model or tile-major order.
  torch::Tensor sparse_in_video_order(const AttentionCall& call, const LayerPlan& lp,
                                      const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, bool refresh,
                                      const DeviceLayout& layout, const torch::Tensor& online_out,
                                      bool tile_major);
  bool video_kernels_run(const torch::Device& device) const;
  DeviceLayout build_layout(const LayerPlan& lp, int64_t batch, const OnlineSelection* selection,
                            bool online_empty, const torch::Device& device) const;
  void add_complement(const LayerPlan& lp, DeviceLayout& layout) const;

  Plan plan_;
  PlanRunOptions options_;
  TileGeometry geometry_;
  TokenOrder order_;
  std::vector<std::unique_ptr<LayerPlan>> layers_;
  std::unique_ptr<DeviceOrder> device_order_;
  std::unique_ptr<BlockMassComputer> mass_;
  std::map<int, std::unique_ptr<DeviceLayout>> static_layouts_;  // layers without online heads
  std::map<int, std::unique_ptr<DeviceLayout>> refresh_layouts_;
  // Per layer: the order its sparse calls run in (see sparse).
  std::map<int, KernelOrder> layer_orders_;
  std::map<std::pair<int, int>, OnlineSelection> selections_;    // (layer, branch)
  std::map<std::pair<int, int>, std::unique_ptr<DeviceLayout>> selected_layouts_;
  std::map<std::pair<int, int>, CachedShare> cached_shares_;     // (layer, branch)
  PlanRunStats stats_;
};

}  // namespace sparseplan
