#include "runtime/plan_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <optional>
#include <stdexcept>

#include <torch/utils.h>

#include "kernels/block_select_reference.h"
#include "plan/plan_loader.h"
#include "plan/query_pairs.h"
#include "runtime/attention_profile.h"
#include "runtime/block_mass_torch.h"
#include "runtime/block_sparse_torch.h"
#include "runtime/pooled_kv.h"
#include "runtime/torch_ops.h"

namespace sparseplan {

struct PlanBackend::LayerPlan {
  std::vector<BlockLayout> heads;  // compiled static layouts; online heads dense placeholders
  std::vector<int> online;         // online heads, increasing
  std::vector<int> online_pos;     // [heads]: position in `online`, -1 for static heads
  bool all_dense = true;
  // [heads]: the static heads' pair orders for the kernels' 64-token blocks
  // (plan/query_pairs.h), made with the layer's first layout on CUDA (the CPU never pairs).
  mutable std::vector<std::vector<int32_t>> pair_orders;
};

struct PlanBackend::DeviceLayout {
  int64_t batch = 0;
  torch::Device device{torch::kCPU};
  torch::Tensor row_offsets;  // int32 [B, H, nqb + 1], global offsets into col_indices
  torch::Tensor col_indices;  // int32
  torch::Tensor kept;         // bool [B, H, nqb, nkb] on the device; pooled compensation only
  // Refresh layouts of the residual cache only (add_complement): the blocks each head's layout
  // leaves out.
  torch::Tensor complement_row_offsets, complement_col_indices;
  // int32 [B, H, nqb]: which query blocks the kernels pair (64-token blocks on CUDA only);
  // online heads in consecutive pairs.
  std::optional<torch::Tensor> pair_order;
  double density = 0.0;       // blocks run / all blocks; online heads at a selection count 1
};

// The dropped blocks' share of one (layer, branch), in tile order: their normalised output
// [B, slots, H, D] and its softmax weight [B, slots, H, 1] among all keys.
struct PlanBackend::CachedShare {
  torch::Tensor out, weight;
};

struct PlanBackend::DeviceOrder {
  // Between the padded tile order and the rows of a call (model order or tile-major order).
  struct Maps {
    torch::Tensor gather;   // int64 [padded]: row of each slot, N for padding
    torch::Tensor scatter;  // int64 [N]: slot of each row
    // The same in int32 for the reorder kernel (gather: -1 for padding); CUDA only.
    torch::Tensor gather32, scatter32;
  };
  torch::Device device{torch::kCPU};
  Maps model, tile_major;
  torch::Tensor tile_major_tokens;  // int64 [N]: model token of each tile-major row
  torch::Tensor tile_major_rows;    // int64 [N]: tile-major row of each model token
  // int32 [total_blocks]; absent when every block is full, so the kernels skip their padding
  // handling (its producer warp costs dense-like launches 5-8%, bench/RESULTS.md).
  std::optional<torch::Tensor> kv_valid;
};

namespace {

bool contains(const std::vector<int>& values, int value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "; ") + p;
  return s;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("plan backend: " + what);
}

template <typename T>
torch::Tensor to_tensor(const std::vector<T>& values, torch::ScalarType dtype,
                        const torch::Device& device) {
  return torch::tensor(at::ArrayRef<T>(values), dtype).to(device);
}

// Per query block the fewest key blocks reaching the rule's recall, between min_density and
// max_density of all key blocks (counted as the search counts them, search/plan_compare.cpp);
// text key blocks are always kept and text query rows see every block.
BlockLayout select_head(const TileGeometry& g, const OnlineRule& rule, const float* mass) {
  const int n = g.total_blocks;
  const int lo = std::max(0, int(std::ceil(rule.min_density * n - 1e-9)));
  const int hi = std::max(1, int(std::floor(rule.max_density * n + 1e-9)));
  ref::SelectionRule r;
  r.mass_target = float(rule.recall);
  r.min_blocks = lo;
  r.max_blocks = std::max(lo, hi);
  std::vector<uint8_t> text(size_t(n), 0);
  for (int b = 0; b < g.text_blocks; ++b) text[size_t(g.text_block_offset() + b)] = 1;
  std::vector<int32_t> ro, ci;
  ref::select_blocks(r, mass, n, n, text.data(), ro, ci);

  BlockLayout layout;
  layout.num_q_blocks = layout.num_k_blocks = n;
  layout.kind = RuleKind::Online;
  layout.row_offsets.push_back(0);
  for (int q = 0; q < n; ++q) {
    if (text[size_t(q)]) {
      for (int c = 0; c < n; ++c) layout.col_indices.push_back(c);
    } else {
      layout.col_indices.insert(layout.col_indices.end(), ci.begin() + ro[size_t(q)],
                                ci.begin() + ro[size_t(q) + 1]);
    }
    layout.row_offsets.push_back(int32_t(layout.col_indices.size()));
  }
  return layout;
}

// The softmax weight of the complement's keys per query row, [B, slots, H, 1], from the LSEs
// [B, H, slots] of a layout and its complement; 0 where neither sees a key (padding rows).
torch::Tensor dropped_weight(const torch::Tensor& kept_lse, const torch::Tensor& rest_lse) {
  const torch::Tensor a = kept_lse.to(torch::kFloat32).transpose(1, 2).unsqueeze(-1);
  const torch::Tensor c = rest_lse.to(torch::kFloat32).transpose(1, 2).unsqueeze(-1);
  torch::Tensor m = torch::maximum(a, c);
  m = torch::where(torch::isfinite(m), m, torch::zeros_like(m));
  const torch::Tensor ea = torch::exp(a - m), ec = torch::exp(c - m);
  const torch::Tensor total = ea + ec;
  return torch::where(total > 0, ec / total, torch::zeros_like(total)).contiguous();
}

// The kept blocks' output with the dropped blocks' output mixed in at its weight, in float32.
torch::Tensor mix_in(const torch::Tensor& kept, const torch::Tensor& dropped,
                     const torch::Tensor& weight) {
  const torch::Tensor k = kept.to(torch::kFloat32);
  return k + weight * (dropped.to(torch::kFloat32) - k);
}

}  // namespace

double PlanRunStats::mean_sparse_density() const {
  return sparse_calls == 0 ? 0.0 : sparse_density_sum / double(sparse_calls);
}

double PlanRunStats::mean_density() const {
  const int64_t calls = dense_calls + sparse_calls;
  return calls == 0 ? 0.0 : (double(dense_calls) + sparse_density_sum) / double(calls);
}

std::string format_plan_stats(const PlanRunStats& s) {
  char line[256];
  std::snprintf(line, sizeof line,
                "plan: %lld dense calls, %lld sparse calls (mean density %.3f), %lld online "
                "selections; overall density %.3f",
                static_cast<long long>(s.dense_calls), static_cast<long long>(s.sparse_calls),
                s.mean_sparse_density(), static_cast<long long>(s.reselections),
                s.mean_density());
  return line;
}

PlanBackend::PlanBackend(Plan plan, PlanRunOptions options)
    : plan_(std::move(plan)), options_(options), geometry_(make_tile_geometry(plan_)),
      order_(make_token_order(geometry_)) {
  layers_.resize(plan_.layers.size());
}

PlanBackend::~PlanBackend() = default;

AttentionFn PlanBackend::attention() {
  return [this](const AttentionCall& call, const torch::Tensor& q, const torch::Tensor& k,
                const torch::Tensor& v) { return (*this)(call, q, k, v); };
}

void PlanBackend::check_model(const ModelInfo& model) const {
  const auto problems = check_plan_matches_model(plan_, model);
  if (!problems.empty()) fail("the plan does not fit the model: " + join(problems));
}

bool PlanBackend::video_kernels_run(const torch::Device& device) const {
  const bool kernel_shape = (plan_.block_size == 64 || plan_.block_size == 128) &&
                            (plan_.model.head_dim == 64 || plan_.model.head_dim == 128);
  return options_.attention == AttentionImpl::Kernels && device.is_cuda() && kernel_shape &&
         cuda_kernels_available() && geometry_.text.tokens == 0 &&
         geometry_.blocks_per_tile == 1 && plan_.compensation != Compensation::PooledKV;
}

torch::Tensor PlanBackend::stream_order(const torch::Device& device) {
  if (!video_kernels_run(device)) return {};
  return device_order(device).tile_major_tokens;
}

bool PlanBackend::runs_dense(const AttentionCall& call) const {
  const Schedule& s = plan_.schedule;
  return call.step < 0 || call.step < s.warmup_steps || contains(s.dense_steps, call.step) ||
         refreshes(call);
}

bool PlanBackend::refreshes(const AttentionCall& call) const {
  return refreshes_residual_cache(plan_, call.step);
}

const PlanBackend::OnlineSelection* PlanBackend::online_selection(int layer, int branch) const {
  const auto it = selections_.find({layer, branch});
  return it == selections_.end() ? nullptr : &it->second;
}

void PlanBackend::check_call(const AttentionCall& call, const torch::Tensor& q,
                             const torch::Tensor& k, const torch::Tensor& v) const {
  if (q.dim() != 4 || k.sizes() != q.sizes() || v.sizes() != q.sizes())
    fail("q, k, v must be [B, N, H, D] of one shape");
  if (q.size(2) != plan_.model.heads)
    fail("the model's self-attention has " + std::to_string(q.size(2)) + " heads, the plan (" +
         plan_.model.id + ") has " + std::to_string(plan_.model.heads));
  if (q.size(3) != plan_.model.head_dim)
    fail("the model's head_dim is " + std::to_string(q.size(3)) + ", the plan (" +
         plan_.model.id + ") has " + std::to_string(plan_.model.head_dim));
  if (call.layer < 0 || call.layer >= int(plan_.layers.size()))
    fail("layer " + std::to_string(call.layer) + " is outside the plan's " +
         std::to_string(plan_.layers.size()) + " layers");
  const auto problems = check_plan_matches_grid(plan_, call.grid, call.text);
  if (!problems.empty()) fail(join(problems));
  if (q.size(1) != geometry_.sequence_tokens())
    fail("q has " + std::to_string(q.size(1)) + " tokens, the plan's grid and text give " +
         std::to_string(geometry_.sequence_tokens()));
}

const PlanBackend::LayerPlan& PlanBackend::layer_plan(int layer) {
  auto& slot = layers_[size_t(layer)];
  if (slot) return *slot;
  auto lp = std::make_unique<LayerPlan>();
  lp->heads = compile_layer_layouts(plan_, geometry_, layer);
  const auto& rules = plan_.layers[size_t(layer)];
  lp->online_pos.assign(rules.size(), -1);
  for (size_t h = 0; h < rules.size(); ++h) {
    if (rules[h].kind != RuleKind::Dense) lp->all_dense = false;
    if (rules[h].kind == RuleKind::Online) {
      lp->online_pos[h] = int(lp->online.size());
      lp->online.push_back(int(h));
    }
  }
  slot = std::move(lp);
  return *slot;
}

const PlanBackend::DeviceOrder& PlanBackend::device_order(const torch::Device& asked) {
  // "cuda" resolved to the current device, as the calls' tensors name it ("cuda:0"): one cached
  // order serves stream_order and the calls, so a call's token order is the very tensor handed
  // out (no comparison, which would wait for the device, on every sparse call).
  const torch::Device device = asked.is_cuda() && !asked.has_index()
                                   ? torch::empty({0}, torch::TensorOptions().device(asked)).device()
                                   : asked;
  if (device_order_ && device_order_->device == device) return *device_order_;
  const int64_t n = geometry_.sequence_tokens();
  const auto maps = [&](const std::vector<int32_t>& row_of_slot,
                        const std::vector<int32_t>& slot_of_row) {
    std::vector<int64_t> gather(row_of_slot.size());
    for (size_t i = 0; i < gather.size(); ++i) gather[i] = row_of_slot[i] < 0 ? n : row_of_slot[i];
    DeviceOrder::Maps m;
    m.gather = to_tensor(gather, torch::kLong, device);
    m.scatter = to_tensor(slot_of_row, torch::kLong, device);
    if (device.is_cuda()) {
      m.gather32 = to_tensor(row_of_slot, torch::kInt, device);
      m.scatter32 = to_tensor(slot_of_row, torch::kInt, device);
    }
    return m;
  };
  const std::vector<int32_t> tokens = tile_major_tokens(order_);
  std::vector<int32_t> rows(tokens.size());
  for (size_t r = 0; r < tokens.size(); ++r) rows[size_t(tokens[r])] = int32_t(r);
  const TokenOrder by_row = tile_major_order(order_);
  auto d = std::make_unique<DeviceOrder>();
  d->device = device;
  d->model = maps(order_.token_of_slot, order_.slot_of_token);
  d->tile_major = maps(by_row.token_of_slot, by_row.slot_of_token);
  d->tile_major_tokens = to_tensor(tokens, torch::kLong, device);
  d->tile_major_rows = to_tensor(rows, torch::kLong, device);
  const bool padded = std::any_of(order_.block_valid.begin(), order_.block_valid.end(),
                                  [&](int32_t v) { return v < plan_.block_size; });
  if (padded) d->kv_valid = to_tensor(order_.block_valid, torch::kInt, device);
  device_order_ = std::move(d);
  return *device_order_;
}

PlanBackend::DeviceLayout PlanBackend::build_layout(const LayerPlan& lp, int64_t batch,
                                                    const OnlineSelection* selection,
                                                    bool online_empty,
                                                    const torch::Device& device) const {
  const int64_t H = int64_t(lp.heads.size());
  const int64_t nqb = geometry_.total_blocks, nkb = geometry_.total_blocks;
  std::vector<int32_t> ro, ci;
  ro.reserve(size_t(batch * H * (nqb + 1)));
  double run = 0.0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int pos = lp.online_pos[size_t(h)];
      const int32_t base = int32_t(ci.size());
      if (pos >= 0 && online_empty) {
        // This call takes these heads' output from the dense pass of the selection.
        ro.insert(ro.end(), size_t(nqb + 1), base);
        run += double(nqb) * double(nkb);
        continue;
      }
      const BlockLayout& l =
          pos >= 0 ? selection->layouts[size_t(b * int64_t(lp.online.size()) + pos)]
                   : lp.heads[size_t(h)];
      for (int32_t r : l.row_offsets) ro.push_back(base + r);
      ci.insert(ci.end(), l.col_indices.begin(), l.col_indices.end());
      run += double(l.nnz());
    }
  if (ci.empty()) ci.push_back(0);  // a valid pointer for the kernels; never read
  DeviceLayout d;
  d.batch = batch;
  d.device = device;
  if (device.is_cuda() && plan_.block_size == 64 && options_.pair_query_blocks) {
    if (lp.pair_orders.empty()) {
      lp.pair_orders.resize(size_t(H));
      for (int64_t h = 0; h < H; ++h)
        if (lp.online_pos[size_t(h)] < 0)
          lp.pair_orders[size_t(h)] = pair_query_blocks(lp.heads[size_t(h)], geometry_);
    }
    std::vector<int32_t> consecutive(static_cast<size_t>(nqb));
    std::iota(consecutive.begin(), consecutive.end(), 0);
    std::vector<int32_t> orders;
    orders.reserve(size_t(batch * H * nqb));
    bool paired_otherwise = false;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const auto& o = lp.online_pos[size_t(h)] < 0 ? lp.pair_orders[size_t(h)] : consecutive;
        paired_otherwise = paired_otherwise || o != consecutive;
        orders.insert(orders.end(), o.begin(), o.end());
      }
    // Consecutive pairs everywhere need no order (and no check of it on the device).
    if (paired_otherwise)
      d.pair_order = to_tensor(orders, torch::kInt, device).view({batch, H, nqb});
  }
  d.row_offsets = to_tensor(ro, torch::kInt, device).view({batch, H, nqb + 1});
  d.col_indices = to_tensor(ci, torch::kInt, device);
  d.density = run / (double(batch * H) * double(nqb) * double(nkb));
  if (plan_.compensation == Compensation::PooledKV) {
    d.kept = kept_blocks(d.row_offsets, d.col_indices, nkb).to(device);
    // The pooled keys: one per key block for every query row.
    d.density += 1.0 / double(plan_.block_size);
  }
  return d;
}

void PlanBackend::add_complement(const LayerPlan& lp, DeviceLayout& d) const {
  const int64_t H = int64_t(lp.heads.size());
  const int nb = geometry_.total_blocks;
  // Per head, the blocks its refresh layout leaves out: all of them for online heads (which run
  // no block there), the rest of the compiled layout for static ones.
  std::vector<BlockLayout> rest;
  for (int64_t h = 0; h < H; ++h) {
    std::vector<uint8_t> mask(size_t(nb) * size_t(nb), 1);
    if (lp.online_pos[size_t(h)] < 0) {
      mask = layout_to_mask(lp.heads[size_t(h)]);
      for (uint8_t& m : mask) m = !m;
    }
    rest.push_back(mask_to_layout(mask, nb, nb));
  }
  std::vector<int32_t> ro, ci;
  for (int64_t b = 0; b < d.batch; ++b)
    for (const BlockLayout& l : rest) {
      const int32_t base = int32_t(ci.size());
      for (int32_t r : l.row_offsets) ro.push_back(base + r);
      ci.insert(ci.end(), l.col_indices.begin(), l.col_indices.end());
    }
  if (ci.empty()) ci.push_back(0);  // a valid pointer for the kernels; never read
  d.complement_row_offsets = to_tensor(ro, torch::kInt, d.device).view({d.batch, H, nb + 1});
  d.complement_col_indices = to_tensor(ci, torch::kInt, d.device);
}

void PlanBackend::reselect(const AttentionCall& call, const LayerPlan& lp, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v,
                           torch::Tensor& online_out) {
  if (!mass_) {
    BlockMassOptions options;
    options.block_size = plan_.block_size;
    options.tiles = {plan_.tile};
    options.attention = options_.attention;
    mass_ = std::make_unique<BlockMassComputer>(plan_.grid, plan_.text, options);
  }
  const std::vector<int64_t> heads(lp.online.begin(), lp.online.end());
  const torch::Tensor index = to_tensor(heads, torch::kLong, q.device());
  AttentionWithMass r =
      (*mass_)(q.index_select(2, index), k.index_select(2, index), v.index_select(2, index));
  online_out = r.out;
  const torch::Tensor mass = r.tiles.at(0).mass.contiguous();  // [B, Ho, nb, nb] on the CPU
  const int64_t B = q.size(0), Ho = int64_t(heads.size()), nb = geometry_.total_blocks;
  OnlineSelection sel;
  sel.step = call.step;
  sel.batch = B;
  sel.heads = lp.online;
  const float* m = mass.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Ho; ++i) {
      const HeadRule& rule = plan_.layers[size_t(call.layer)][size_t(heads[size_t(i)])];
      sel.layouts.push_back(select_head(geometry_, rule.online, m + (b * Ho + i) * nb * nb));
    }
  selections_[{call.layer, call.branch}] = std::move(sel);
  ++stats_.reselections;
}

torch::Tensor PlanBackend::dense(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v) {
  if (!options_.profile) return run_dense_attention(q, k, v, options_.attention);
  return options_.profile->time(AttentionProfile::Part::Dense, q.device(), [&] {
    return run_dense_attention(q, k, v, options_.attention);
  });
}

torch::Tensor PlanBackend::operator()(const AttentionCall& call, const torch::Tensor& q,
                                      const torch::Tensor& k, const torch::Tensor& v) {
  check_call(call, q, k, v);
  torch::NoGradGuard no_grad;
  const bool refresh = refreshes(call);
  if (runs_dense(call) && !refresh) {
    ++stats_.dense_calls;
    return dense(q, k, v);
  }
  const LayerPlan& lp = layer_plan(call.layer);
  if (refresh) {
    ++stats_.dense_calls;
    if (lp.all_dense) return dense(q, k, v);
    if (!options_.profile) return sparse(call, lp, q, k, v, true);
    return options_.profile->time(AttentionProfile::Part::Dense, q.device(),
                                  [&] { return sparse(call, lp, q, k, v, true); });
  }
  ++stats_.sparse_calls;
  if (lp.all_dense) {
    stats_.sparse_density_sum += 1.0;
    return dense(q, k, v);
  }
  if (!options_.profile) return sparse(call, lp, q, k, v, false);
  return options_.profile->time(AttentionProfile::Part::Sparse, q.device(),
                                [&] { return sparse(call, lp, q, k, v, false); });
}

torch::Tensor PlanBackend::sparse(const AttentionCall& call, const LayerPlan& lp,
                                  const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, bool refresh) {
  const int64_t B = q.size(0), H = q.size(2), D = q.size(3);
  const torch::Device device = q.device();
  AttentionProfile* profile = options_.profile;
  const auto timed = [&](AttentionProfile::Part part, auto&& f) {
    if (!profile) return f();
    return profile->time(part, device, f);
  };
  const auto key = std::make_pair(call.layer, call.branch);
  const DeviceOrder& order = device_order(device);
  // The call's rows are model tokens, or with the runner's stream in tile-major order
  // (stream_order) tile-major rows.
  const bool tile_major_call = call.token_order.defined();
  if (tile_major_call && !call.token_order.is_same(order.tile_major_tokens) &&
      !(call.token_order.sizes() == order.tile_major_tokens.sizes() &&
        torch::equal(call.token_order.to(device), order.tile_major_tokens)))
    fail("q, k, v come in a token order that is neither model order nor the plan's tile-major "
         "order");
  const auto in_model_order = [&](const torch::Tensor& x) {
    return tile_major_call ? x.index_select(1, order.tile_major_rows) : x;
  };
  torch::Tensor online_out;
  DeviceLayout fresh;
  const DeviceLayout* layout = nullptr;
  if (refresh) {
    // Static heads run their layout, online heads nothing; the complements give the rest.
    auto& slot = refresh_layouts_[call.layer];
    if (!slot || slot->batch != B || slot->device != device) {
      slot = std::make_unique<DeviceLayout>(build_layout(lp, B, nullptr, true, device));
      add_complement(lp, *slot);
    }
    layout = slot.get();
  } else if (lp.online.empty()) {
    auto& slot = static_layouts_[call.layer];
    if (!slot || slot->batch != B || slot->device != device)
      slot = std::make_unique<DeviceLayout>(build_layout(lp, B, nullptr, false, device));
    layout = slot.get();
  } else {
    const auto it = selections_.find(key);
    const bool due = it == selections_.end() || it->second.batch != B ||
                     (contains(plan_.schedule.reselect_steps, call.step) &&
                      it->second.step != call.step);
    if (due) {
      timed(AttentionProfile::Part::Selection, [&] {
        reselect(call, lp, in_model_order(q), in_model_order(k), in_model_order(v), online_out);
        if (tile_major_call) online_out = online_out.index_select(1, order.tile_major_tokens);
        return 0;
      });
      selected_layouts_.erase(key);
      fresh = build_layout(lp, B, nullptr, /*online_empty=*/true, device);
      layout = &fresh;
    } else {
      auto& slot = selected_layouts_[key];
      if (!slot || slot->device != device)
        slot = std::make_unique<DeviceLayout>(build_layout(lp, B, &it->second, false, device));
      layout = slot.get();
    }
  }

  // On the kernels, tokens move in bf16 through the reorder kernel (one gather per tensor);
  // elsewhere through LibTorch with a zero row standing for the padding.
  const bool kernels = options_.attention == AttentionImpl::Kernels && device.is_cuda() &&
                       block_sparse_kernel_runs(q, plan_.block_size, plan_.block_size);
  // Where each block is one tile of a video without text, the kernels can read and write the
  // call's order themselves (ops::video_block_sparse_attention), no reorder pass, though they
  // run 7-17% slower than the kernel on gathered tiles (bench/RESULTS.md "Tile-major token
  // stream"). A call in the tile-major order always takes them: the stream was put in that
  // order for it, and end to end that measured faster for four plans of five. In model order the
  // reorder pass costs a fixed time per call, so the kernels win on sparse layers only (Wan
  // 480p: 4-11% faster per call at density <= 0.07, 2-13% slower at >= 0.24).
  // Decided once per layer, at its first call, so that a residual cache share is always mixed
  // in the order it was made. Pooled compensation pools tile-order blocks, so never there.
  auto mode = layer_orders_.find(call.layer);
  if (mode == layer_orders_.end()) {
    KernelOrder o = KernelOrder::Gathered;
    if (video_kernels_run(device) && kernels)
      o = tile_major_call                                    ? KernelOrder::TileMajor
          : layout->density <= options_.fused_max_density ? KernelOrder::ModelOrder
                                                           : KernelOrder::Gathered;
    mode = layer_orders_.emplace(call.layer, o).first;
  }
  if (mode->second != KernelOrder::Gathered)
    return sparse_in_video_order(call, lp, q, k, v, refresh, *layout, online_out,
                                 mode->second == KernelOrder::TileMajor);
  const DeviceOrder::Maps& maps = tile_major_call ? order.tile_major : order.model;
  const auto to_tiles = [&](const torch::Tensor& x) {
    if (kernels)
      return ops::reorder_tokens(x.to(torch::kBFloat16).contiguous(), maps.gather32);
    return torch::cat({x, torch::zeros({B, 1, H, D}, x.options())}, 1).index_select(1, maps.gather);
  };
  torch::Tensor qt, kt, vt;
  timed(AttentionProfile::Part::Reorder, [&] {
    qt = to_tiles(q), kt = to_tiles(k), vt = to_tiles(v);
    return 0;
  });
  // The layout's pair order goes with its own blocks, not its complement's.
  const auto attend = [&](const torch::Tensor& row_offsets, const torch::Tensor& col_indices,
                          const std::optional<torch::Tensor>& pairs) {
    return kernels ? run_block_sparse_attention(qt, kt, vt, row_offsets, col_indices,
                                                plan_.block_size, plan_.block_size, order.kv_valid,
                                                std::nullopt, pairs)
                   : block_sparse_attention_torch(qt, kt, vt, row_offsets, col_indices,
                                                  plan_.block_size, plan_.block_size,
                                                  order.kv_valid);
  };
  const auto result = attend(layout->row_offsets, layout->col_indices, layout->pair_order);
  torch::Tensor tiles = std::get<0>(result);
  if (plan_.compensation == Compensation::PooledKV) {
    tiles = timed(AttentionProfile::Part::Compensation, [&] {
      const torch::Tensor merged =
          compensate_dropped_blocks(qt, kt, vt, tiles, std::get<1>(result), layout->kept,
                                    plan_.block_size, order.kv_valid);
      return kernels ? merged.to(torch::kBFloat16) : merged;
    });
  }
  if (plan_.compensation == Compensation::ResidualCache) {
    tiles = timed(AttentionProfile::Part::Compensation, [&] {
      torch::Tensor mixed;
      if (refresh) {
        const auto rest = attend(layout->complement_row_offsets, layout->complement_col_indices,
                                 std::nullopt);
        CachedShare share{std::get<0>(rest),
                          dropped_weight(std::get<1>(result), std::get<1>(rest))};
        mixed = mix_in(tiles, share.out, share.weight);
        if (!lp.online.empty()) {
          const std::vector<int64_t> heads(lp.online.begin(), lp.online.end());
          share.weight.index_fill_(2, to_tensor(heads, torch::kLong, device), 0.0);
        }
        cached_shares_[key] = std::move(share);
      } else {
        const auto it = cached_shares_.find(key);
        if (it == cached_shares_.end() || it->second.out.size(0) != B) return tiles;
        mixed = mix_in(tiles, it->second.out, it->second.weight);
      }
      return kernels ? mixed.to(torch::kBFloat16) : mixed.to(tiles.scalar_type());
    });
  }
  torch::Tensor out = timed(AttentionProfile::Part::Reorder, [&] {
    if (kernels) return ops::reorder_tokens(tiles, maps.scatter32).to(torch::kFloat32);
    return tiles.index_select(1, maps.scatter).to(torch::kFloat32).contiguous();
  });
  if (online_out.defined()) {
    const std::vector<int64_t> heads(lp.online.begin(), lp.online.end());
    out.index_copy_(2, to_tensor(heads, torch::kLong, device), online_out.to(device));
  }
  if (!refresh) stats_.sparse_density_sum += layout->density;
  return out;
}

torch::Tensor PlanBackend::sparse_in_video_order(const AttentionCall& call, const LayerPlan& lp,
                                                 const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& v, bool refresh,
                                                 const DeviceLayout& layout,
                                                 const torch::Tensor& online_out,
                                                 bool tile_major) {
  AttentionProfile* profile = options_.profile;
  const torch::Device device = q.device();
  const auto key = std::make_pair(call.layer, call.branch);
  const DeviceOrder& order = device_order(device);
  // A call in the other order than the layer's (a runner that changed its stream order) moves
  // its rows there and back, booked as reorder.
  const bool moved = call.token_order.defined() != tile_major;
  const auto move = [&](const torch::Tensor& x, bool to_layer) {
    if (!moved) return x;
    const auto run = [&] {
      return x.index_select(1, tile_major == to_layer ? order.tile_major_tokens
                                                      : order.tile_major_rows);
    };
    return profile ? profile->time(AttentionProfile::Part::Reorder, device, run) : run();
  };
  const torch::Tensor qb = move(q.to(torch::kBFloat16), true).contiguous(),
                      kb = move(k.to(torch::kBFloat16), true).contiguous(),
                      vb = move(v.to(torch::kBFloat16), true).contiguous();
  const Grid& grid = geometry_.grid;
  const std::vector<int64_t> grid_dims{grid.frames, grid.height, grid.width};
  const std::vector<int64_t> tile(geometry_.tile.begin(), geometry_.tile.end());
  const auto attend = [&](const torch::Tensor& row_offsets, const torch::Tensor& col_indices,
                          const std::optional<torch::Tensor>& pairs) {
    return ops::video_block_sparse_attention(qb, kb, vb, row_offsets, col_indices, grid_dims,
                                             tile, plan_.block_size, tile_major, c10::nullopt,
                                             pairs);
  };
  const auto result = attend(layout.row_offsets, layout.col_indices, layout.pair_order);
  torch::Tensor out = std::get<0>(result);
  if (plan_.compensation == Compensation::ResidualCache) {
    const auto mix = [&] {
      if (refresh) {
        const auto rest =
            attend(layout.complement_row_offsets, layout.complement_col_indices, std::nullopt);
        CachedShare share{std::get<0>(rest),
                          dropped_weight(std::get<1>(result), std::get<1>(rest))};
        torch::Tensor mixed = mix_in(out, share.out, share.weight);
        if (!lp.online.empty()) {
          const std::vector<int64_t> heads(lp.online.begin(), lp.online.end());
          share.weight.index_fill_(2, to_tensor(heads, torch::kLong, device), 0.0);
        }
        cached_shares_[key] = std::move(share);
        return mixed;
      }
      const auto it = cached_shares_.find(key);
      if (it == cached_shares_.end() || it->second.out.size(0) != out.size(0)) return out;
      return mix_in(out, it->second.out, it->second.weight);
    };
    out = profile ? profile->time(AttentionProfile::Part::Compensation, device, mix) : mix();
  }
  out = move(out, false).to(torch::kFloat32);
  if (online_out.defined()) {
    const std::vector<int64_t> heads(lp.online.begin(), lp.online.end());
    out.index_copy_(2, to_tensor(heads, torch::kLong, device), online_out.to(device));
  }
  if (!refresh) stats_.sparse_density_sum += layout.density;
  return out;
}

}  // namespace sparseplan
