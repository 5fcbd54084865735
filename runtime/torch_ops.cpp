#include "runtime/torch_ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention_reference.h"
#include "kernels/block_select_reference.h"
#include "plan/tile_geometry.h"

#if defined(SPARSEPLAN_WITH_CUDA) && defined(SPARSEPLAN_TORCH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/attention_api.h"
#define SPARSEPLAN_OPS_CUDA 1
#endif

namespace sparseplan::ops {
namespace {

using at::Tensor;

// Builds error messages without std::ostream: inside the pip torch 2.11 Python process,
// inserting an integer into an ostream from this library crashed (segfault in TORCH_CHECK's
// message formatting); strings are safe.
std::string piece(const char* s) { return s; }
std::string piece(const std::string& s) { return s; }
std::string piece(int64_t v) { return std::to_string(v); }
std::string piece(int v) { return std::to_string(v); }
std::string piece(double v) { return std::to_string(v); }
std::string piece(at::ScalarType t) { return c10::toString(t); }
std::string piece(const at::Device& d) { return d.str(); }
std::string piece(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}
template <typename... Args>
std::string message(const Args&... args) {
  std::string s;
  ((s += piece(args)), ...);
  return s;
}

void check_qkv_like(const char* op, const char* name, const Tensor& t) {
  TORCH_CHECK(t.dim() == 4,
              message(op, ": ", name, " must be 4-D [B, N, H, D], got shape ", t.sizes()));
  TORCH_CHECK(t.stride(3) == 1,
              message(op, ": ", name, " must be contiguous in its last dimension"));
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              message(op, ": ", name, " must be a floating-point tensor, got ", t.scalar_type()));
}

void check_same(const char* op, const char* name, const Tensor& t, const Tensor& q) {
  TORCH_CHECK(t.device() == q.device(),
              message(op, ": ", name, " must be on ", q.device(), ", got ", t.device()));
  TORCH_CHECK(
      t.scalar_type() == q.scalar_type(),
      message(op, ": ", name, " must have q's dtype ", q.scalar_type(), ", got ", t.scalar_type()));
}

// Checks q, k, v [B, N, H, D] and returns kv_heads.
int64_t check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor* v) {
  check_qkv_like(op, "q", q);
  check_qkv_like(op, "k", k);
  check_same(op, "k", k, q);
  TORCH_CHECK(
      k.size(0) == q.size(0) && k.size(3) == q.size(3),
      message(op, ": k must have q's batch and head_dim, got k ", k.sizes(), " and q ", q.sizes()));
  TORCH_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0,
              message(op, ": k's heads (", k.size(2), ") must divide q's heads (", q.size(2), ")"));
  if (v != nullptr) {
    check_qkv_like(op, "v", *v);
    check_same(op, "v", *v, q);
    TORCH_CHECK(v->sizes() == k.sizes(),
                message(op, ": v must have k's shape ", k.sizes(), ", got ", v->sizes()));
  }
  return k.size(2);
}

void check_int32(const char* op, const char* name, const Tensor& t, const at::Device& device) {
  TORCH_CHECK(t.scalar_type() == at::kInt,
              message(op, ": ", name, " must be int32, got ", t.scalar_type()));
  TORCH_CHECK(t.device() == device,
              message(op, ": ", name, " must be on ", device, ", got ", t.device()));
  TORCH_CHECK(t.is_contiguous(), message(op, ": ", name, " must be contiguous"));
}

void check_block(const char* op, const char* name, int64_t block) {
  TORCH_CHECK(block == 64 || block == 128,
              message(op, ": ", name, " must be 64 or 128, got ", block));
}

int64_t blocks(int64_t len, int64_t block) { return (len + block - 1) / block; }

double resolve_scale(const char* op, c10::optional<double> scale, int64_t head_dim) {
  const double s = scale.has_value() ? *scale : 1.0 / std::sqrt(double(head_dim));
  TORCH_CHECK(s > 0.0 && std::isfinite(s),
              message(op, ": scale must be positive and finite, got ", s));
  return s;
}

void check_layout(const char* op, const Tensor& q, int64_t nqb, const Tensor& row_offsets,
                  const Tensor& col_indices) {
  check_int32(op, "row_offsets", row_offsets, q.device());
  check_int32(op, "col_indices", col_indices, q.device());
  TORCH_CHECK(row_offsets.dim() == 3 && row_offsets.size(0) == q.size(0) &&
                  row_offsets.size(1) == q.size(2) && row_offsets.size(2) == nqb + 1,
              message(op, ": row_offsets must be [B, H, nqb + 1] = [", q.size(0), ", ", q.size(2),
                      ", ", nqb + 1, "], got ", row_offsets.sizes()));
  TORCH_CHECK(col_indices.dim() == 1,
              message(op, ": col_indices must be 1-D, got ", col_indices.sizes()));
}

void check_valid(const char* op, const char* name, const c10::optional<Tensor>& t, int64_t n,
                 const at::Device& device) {
  if (!t.has_value()) return;
  check_int32(op, name, *t, device);
  TORCH_CHECK(t->dim() == 1 && t->size(0) == n,
              message(op, ": ", name, " must be [", n, "], got ", t->sizes()));
}

// q_pair_order: int32 [B, H, nqb] on q's device. Its values are a hint the kernels check
// themselves (a head whose entries are no permutation keeps consecutive pairs), so the CPU,
// which does not pair, only checks the shape.
void check_pair_order(const char* op, const Tensor& q, int64_t nqb,
                      const c10::optional<Tensor>& order) {
  if (!order.has_value()) return;
  check_int32(op, "q_pair_order", *order, q.device());
  TORCH_CHECK(order->dim() == 3 && order->size(0) == q.size(0) && order->size(1) == q.size(2) &&
                  order->size(2) == nqb,
              message(op, ": q_pair_order must be [", q.size(0), ", ", q.size(2), ", ", nqb,
                      "], got ", order->sizes()));
  TORCH_CHECK(order->is_contiguous(), message(op, ": q_pair_order must be contiguous"));
}

// ---- CPU: the float32 references, one (batch, head) at a time -------------------------------

Tensor head_f32(const Tensor& x, int64_t b, int64_t h) {
  return x.select(0, b).select(1, h).to(at::kFloat).contiguous();
}

const int32_t* opt_ptr(const c10::optional<Tensor>& t) {
  return t.has_value() ? t->data_ptr<int32_t>() : nullptr;
}

std::tuple<Tensor, Tensor> attention_cpu(const char* op, const Tensor& q, const Tensor& k,
                                         const Tensor& v, const Tensor* row_offsets,
                                         const Tensor* col_indices, int64_t block_q,
                                         int64_t block_k, const c10::optional<Tensor>& kvv,
                                         double scale) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), D = q.size(3);
  const int64_t group = H / k.size(2);
  auto out = at::empty({B, N, H, D}, q.options().dtype(at::kFloat));
  auto lse = at::empty({B, H, N}, q.options().dtype(at::kFloat));
  ref::HeadShape shape{N, k.size(1), int(D), float(scale)};
  const int64_t nqb = blocks(N, block_q);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const Tensor qh = head_f32(q, b, h), kh = head_f32(k, b, h / group),
                   vh = head_f32(v, b, h / group);
      auto oh = at::empty({N, D}, qh.options());
      auto lh = at::empty({N}, qh.options());
      if (row_offsets == nullptr) {
        ref::dense_attention(shape, qh.data_ptr<float>(), kh.data_ptr<float>(),
                             vh.data_ptr<float>(), oh.data_ptr<float>(), lh.data_ptr<float>());
      } else {
        const int32_t* ro = row_offsets->data_ptr<int32_t>() + (b * H + h) * (nqb + 1);
        std::vector<int32_t> local(ro, ro + nqb + 1);
        for (auto& x : local) x -= ro[0];
        TORCH_CHECK(
            ro[0] >= 0 && ro[nqb] <= col_indices->numel() && local.back() >= 0,
            message(op, ": row_offsets of head (", b, ", ", h, ") point outside col_indices"));
        const int32_t* cols = col_indices->data_ptr<int32_t>() + ro[0];
        const int64_t nkb = blocks(k.size(1), block_k);
        for (int64_t i = 0; i < local.back(); ++i)
          TORCH_CHECK(cols[i] >= 0 && cols[i] < nkb,
                      message(op, ": col_indices value ", cols[i], " is outside [0, ", nkb, ")"));
        ref::BlockSparsity sp{int(block_q), int(block_k), local.data(), cols, opt_ptr(kvv)};
        ref::block_sparse_attention(shape, sp, qh.data_ptr<float>(), kh.data_ptr<float>(),
                                    vh.data_ptr<float>(), oh.data_ptr<float>(),
                                    lh.data_ptr<float>());
      }
      out.select(0, b).select(1, h).copy_(oh);
      lse.select(0, b).select(0, h).copy_(lh);
    }
  return {out.to(q.scalar_type()), lse};
}

std::tuple<Tensor, Tensor> dense_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v,
                                               c10::optional<double> scale) {
  const char* op = "sparseplan::dense_attention";
  check_qkv(op, q, k, &v);
  return attention_cpu(op, q, k, v, nullptr, nullptr, 64, 64, c10::nullopt,
                       resolve_scale(op, scale, q.size(3)));
}

void check_sparse_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& row_offsets, const Tensor& col_indices, int64_t block_q,
                       int64_t block_k, const c10::optional<Tensor>& kv_block_valid) {
  check_qkv(op, q, k, &v);
  check_block(op, "block_q", block_q);
  check_block(op, "block_k", block_k);
  check_layout(op, q, blocks(q.size(1), block_q), row_offsets, col_indices);
  check_valid(op, "kv_block_valid", kv_block_valid, blocks(k.size(1), block_k), q.device());
}

std::tuple<Tensor, Tensor> block_sparse_attention_cpu(const Tensor& q, const Tensor& k,
                                                      const Tensor& v, const Tensor& row_offsets,
                                                      const Tensor& col_indices, int64_t block_q,
                                                      int64_t block_k,
                                                      const c10::optional<Tensor>& kv_block_valid,
                                                      c10::optional<double> scale,
                                                      const c10::optional<Tensor>& q_pair_order) {
  const char* op = "sparseplan::block_sparse_attention";
  check_sparse_args(op, q, k, v, row_offsets, col_indices, block_q, block_k, kv_block_valid);
  check_pair_order(op, q, blocks(q.size(1), block_q), q_pair_order);
  return attention_cpu(op, q, k, v, &row_offsets, &col_indices, block_q, block_k, kv_block_valid,
                       resolve_scale(op, scale, q.size(3)));
}

// The fused tile order's geometry for q and k (video_block_sparse_attention).
TileGeometry video_geometry(const char* op, const Tensor& q, const Tensor& k,
                            c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block) {
  check_block(op, "block", block);
  TORCH_CHECK(grid.size() == 3,
              message(op, ": grid must be [frames, height, width], got ", grid));
  TORCH_CHECK(tile.size() == 3, message(op, ": tile must be [frames, height, width], got ", tile));
  for (size_t i = 0; i < 3; ++i)
    TORCH_CHECK(grid[i] > 0 && grid[i] <= std::numeric_limits<int>::max() && tile[i] > 0 &&
                    tile[i] <= grid[i],
                message(op, ": grid ", grid, " and tile ", tile,
                        " must be positive, the tile no larger than the grid"));
  TileGeometry g;
  try {
    g = make_tile_geometry(Grid{int(grid[0]), int(grid[1]), int(grid[2])},
                           {int(tile[0]), int(tile[1]), int(tile[2])}, int(block), TextLayout{});
  } catch (const std::exception& e) {
    TORCH_CHECK(false, message(op, ": ", e.what()));
  }
  TORCH_CHECK(g.blocks_per_tile == 1,
              message(op, ": tile ", tile, " must fit one block of ", block, " tokens"));
  TORCH_CHECK(q.size(1) == g.grid.tokens() && k.size(1) == g.grid.tokens(),
              message(op, ": grid ", grid, " has ", g.grid.tokens(),
                      " tokens; q and k must hold them, got ", q.size(1), " and ", k.size(1)));
  return g;
}

TileGeometry check_video_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& row_offsets, const Tensor& col_indices,
                              c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block) {
  check_qkv(op, q, k, &v);
  const TileGeometry g = video_geometry(op, q, k, grid, tile, block);
  check_layout(op, q, g.total_blocks, row_offsets, col_indices);
  return g;
}

// The padded tile order's maps on `device` from the caller's rows (model tokens, or with
// tile_major the tile-major rows): row in each slot (-1: padding), slot of each row, and each
// block's token count.
struct VideoOrder {
  Tensor row_of_slot, slot_of_row, block_valid;
};

VideoOrder video_order(const TileGeometry& g, bool tile_major, const at::Device& device) {
  const TokenOrder order =
      tile_major ? tile_major_order(make_token_order(g)) : make_token_order(g);
  const auto to_tensor = [&](const std::vector<int32_t>& x) {
    return at::tensor(c10::ArrayRef<int32_t>(x), at::kInt).to(device);
  };
  return {to_tensor(order.token_of_slot), to_tensor(order.slot_of_token),
          to_tensor(order.block_valid)};
}

void check_mass_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& lse,
                     int64_t block_q, int64_t block_k, const c10::optional<Tensor>& qv,
                     const c10::optional<Tensor>& kvv) {
  check_qkv(op, q, k, nullptr);
  check_block(op, "block_q", block_q);
  check_block(op, "block_k", block_k);
  TORCH_CHECK(lse.scalar_type() == at::kFloat,
              message(op, ": lse must be float32, got ", lse.scalar_type()));
  TORCH_CHECK(lse.device() == q.device(), message(op, ": lse must be on ", q.device()));
  TORCH_CHECK(lse.is_contiguous(), message(op, ": lse must be contiguous"));
  TORCH_CHECK(lse.dim() == 3 && lse.size(0) == q.size(0) && lse.size(1) == q.size(2) &&
                  lse.size(2) == q.size(1),
              message(op, ": lse must be [B, H, N] = [", q.size(0), ", ", q.size(2), ", ",
                      q.size(1), "], got ", lse.sizes()));
  check_valid(op, "q_block_valid", qv, blocks(q.size(1), block_q), q.device());
  check_valid(op, "kv_block_valid", kvv, blocks(k.size(1), block_k), q.device());
}

Tensor block_mass_cpu(const Tensor& q, const Tensor& k, const Tensor& lse, int64_t block_q,
                      int64_t block_k, const c10::optional<Tensor>& q_block_valid,
                      const c10::optional<Tensor>& kv_block_valid, c10::optional<double> scale) {
  const char* op = "sparseplan::block_mass";
  check_mass_args(op, q, k, lse, block_q, block_k, q_block_valid, kv_block_valid);
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), D = q.size(3);
  const int64_t group = H / k.size(2);
  const int64_t nqb = blocks(N, block_q), nkb = blocks(k.size(1), block_k);
  auto mass = at::empty({B, H, nqb, nkb}, q.options().dtype(at::kFloat));
  ref::HeadShape shape{N, k.size(1), int(D), float(resolve_scale(op, scale, D))};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const Tensor qh = head_f32(q, b, h), kh = head_f32(k, b, h / group);
      const Tensor lh = lse.select(0, b).select(0, h).contiguous();
      auto mh = at::empty({nqb, nkb}, qh.options());
      ref::block_mass(shape, int(block_q), int(block_k), opt_ptr(q_block_valid),
                      opt_ptr(kv_block_valid), qh.data_ptr<float>(), kh.data_ptr<float>(),
                      lh.data_ptr<float>(), mh.data_ptr<float>());
      mass.select(0, b).select(0, h).copy_(mh);
    }
  return mass;
}

ref::SelectionRule make_rule(const char* op, double mass_target, int64_t top_k, int64_t min_blocks,
                             int64_t max_blocks) {
  ref::SelectionRule rule{float(mass_target), int(top_k), int(min_blocks), int(max_blocks)};
  try {
    ref::check_selection_rule(rule);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, message(op, ": ", e.what()));
  }
  return rule;
}

void check_select_args(const char* op, const Tensor& mass, const c10::optional<Tensor>& forced) {
  TORCH_CHECK(mass.dim() == 4, message(op, ": mass must be [B, H, nqb, nkb], got ", mass.sizes()));
  TORCH_CHECK(mass.scalar_type() == at::kFloat,
              message(op, ": mass must be float32, got ", mass.scalar_type()));
  TORCH_CHECK(mass.is_contiguous(), message(op, ": mass must be contiguous"));
  if (forced.has_value()) {
    TORCH_CHECK(forced->scalar_type() == at::kByte || forced->scalar_type() == at::kBool,
                message(op, ": forced must be uint8 or bool, got ", forced->scalar_type()));
    TORCH_CHECK(forced->device() == mass.device(),
                message(op, ": forced must be on ", mass.device()));
    TORCH_CHECK(
        forced->dim() == 1 && forced->size(0) == mass.size(3),
        message(op, ": forced must be [nkb] = [", mass.size(3), "], got ", forced->sizes()));
  }
}

// [rows + 1] global offsets -> [B, H, nqb + 1] (each head's last entry = next head's first).
Tensor per_head_offsets(const std::vector<int32_t>& ro, int64_t B, int64_t H, int64_t nqb) {
  auto out = at::empty({B, H, nqb + 1}, at::kInt);
  int32_t* o = out.data_ptr<int32_t>();
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t qb = 0; qb <= nqb; ++qb) o[bh * (nqb + 1) + qb] = ro[size_t(bh * nqb + qb)];
  return out;
}

std::tuple<Tensor, Tensor> select_blocks_cpu(const Tensor& mass, double mass_target, int64_t top_k,
                                             int64_t min_blocks, int64_t max_blocks,
                                             const c10::optional<Tensor>& forced) {
  const char* op = "sparseplan::select_blocks";
  check_select_args(op, mass, forced);
  const auto rule = make_rule(op, mass_target, top_k, min_blocks, max_blocks);
  const int64_t B = mass.size(0), H = mass.size(1), nqb = mass.size(2), nkb = mass.size(3);
  Tensor f;
  if (forced.has_value()) f = forced->to(at::kByte).contiguous();
  std::vector<int32_t> ro, cols;
  ref::select_blocks(rule, mass.data_ptr<float>(), B * H * nqb, int(nkb),
                     f.defined() ? f.data_ptr<uint8_t>() : nullptr, ro, cols);
  auto col_t = at::empty({int64_t(cols.size())}, at::kInt);
  std::copy(cols.begin(), cols.end(), col_t.data_ptr<int32_t>());
  return {per_head_offsets(ro, B, H, nqb), col_t};
}

void check_reorder_args(const char* op, const Tensor& x, const Tensor& index) {
  TORCH_CHECK(x.dim() >= 2, message(op, ": x must be [B, N, ...], got ", x.sizes()));
  TORCH_CHECK(x.is_contiguous(), message(op, ": x must be contiguous"));
  check_int32(op, "index", index, x.device());
  TORCH_CHECK(index.dim() == 1, message(op, ": index must be 1-D, got ", index.sizes()));
}

Tensor reorder_tokens_cpu(const Tensor& x, const Tensor& index) {
  const char* op = "sparseplan::reorder_tokens";
  check_reorder_args(op, x, index);
  auto sizes = x.sizes().vec();
  sizes[1] = index.size(0);
  auto out = at::zeros(sizes, x.options());
  const int32_t* idx = index.data_ptr<int32_t>();
  for (int64_t i = 0; i < index.size(0); ++i)
    if (idx[i] >= 0 && idx[i] < x.size(1)) out.select(1, i).copy_(x.select(1, idx[i]));
  return out;
}

std::tuple<Tensor, Tensor> video_block_sparse_attention_cpu(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& row_offsets,
    const Tensor& col_indices, c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block,
    bool tile_major, c10::optional<double> scale, const c10::optional<Tensor>& q_pair_order) {
  const char* op = "sparseplan::video_block_sparse_attention";
  const TileGeometry g =
      check_video_args(op, q, k, v, row_offsets, col_indices, grid, tile, block);
  check_pair_order(op, q, g.total_blocks, q_pair_order);
  const VideoOrder order = video_order(g, tile_major, q.device());
  const auto tiled = [&](const Tensor& x) {
    return reorder_tokens_cpu(x.contiguous(), order.row_of_slot);
  };
  const auto [out, lse] = attention_cpu(op, tiled(q), tiled(k), tiled(v), &row_offsets,
                                        &col_indices, block, block, order.block_valid,
                                        resolve_scale(op, scale, q.size(3)));
  return {reorder_tokens_cpu(out, order.slot_of_row),
          lse.index_select(2, order.slot_of_row.to(at::kLong))};
}

// ---- CUDA: the kernels -----------------------------------------------------------------------

#ifdef SPARSEPLAN_OPS_CUDA

cuda::DType kernel_dtype(const char* op, const Tensor& q) {
  if (q.scalar_type() == at::kBFloat16) return cuda::DType::BF16;
  if (q.scalar_type() == at::kHalf) return cuda::DType::FP16;
  TORCH_CHECK(false, message(op, ": q must be bfloat16 or float16 on CUDA, got ", q.scalar_type()));
}

// Rethrows the kernels' std::invalid_argument / runtime_error as torch errors.
template <typename F>
void run_kernel(const char* op, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    TORCH_CHECK(false, message(op, ": ", e.what()));
  }
}

cuda::AttentionParams attention_params(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, const Tensor& lse, double scale) {
  cuda::AttentionParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.q_batch_stride = q.stride(0), p.q_row_stride = q.stride(1), p.q_head_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_row_stride = k.stride(1), p.k_head_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_row_stride = v.stride(1), p.v_head_stride = v.stride(2);
  p.o_batch_stride = out.stride(0), p.o_row_stride = out.stride(1), p.o_head_stride = out.stride(2);
  p.batch = int(q.size(0)), p.heads = int(q.size(2)), p.kv_heads = int(k.size(2));
  p.q_len = int(q.size(1)), p.kv_len = int(k.size(1)), p.head_dim = int(q.size(3));
  p.scale = float(scale);
  return p;
}

std::tuple<Tensor, Tensor> dense_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v,
                                                c10::optional<double> scale) {
  const char* op = "sparseplan::dense_attention";
  check_qkv(op, q, k, &v);
  const auto dtype = kernel_dtype(op, q);
  c10::cuda::CUDAGuard guard(q.device());
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  auto p = attention_params(q, k, v, out, lse, resolve_scale(op, scale, q.size(3)));
  run_kernel(op, [&] {
    cuda::dense_attention_forward(p, dtype, c10::cuda::getCurrentCUDAStream().stream());
  });
  return {out, lse};
}

std::tuple<Tensor, Tensor> block_sparse_attention_cuda(const Tensor& q, const Tensor& k,
                                                       const Tensor& v, const Tensor& row_offsets,
                                                       const Tensor& col_indices, int64_t block_q,
                                                       int64_t block_k,
                                                       const c10::optional<Tensor>& kv_block_valid,
                                                       c10::optional<double> scale,
                                                       const c10::optional<Tensor>& q_pair_order) {
  const char* op = "sparseplan::block_sparse_attention";
  check_sparse_args(op, q, k, v, row_offsets, col_indices, block_q, block_k, kv_block_valid);
  check_pair_order(op, q, blocks(q.size(1), block_q), q_pair_order);
  const auto dtype = kernel_dtype(op, q);
  c10::cuda::CUDAGuard guard(q.device());
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  auto p = attention_params(q, k, v, out, lse, resolve_scale(op, scale, q.size(3)));
  p.block_q = int(block_q), p.block_k = int(block_k);
  p.row_offsets = row_offsets.data_ptr<int32_t>();
  p.col_indices = col_indices.data_ptr<int32_t>();
  p.num_cols = col_indices.numel();
  p.kv_block_valid = opt_ptr(kv_block_valid);
  p.q_pair_order = opt_ptr(q_pair_order);
  const size_t bytes = cuda::block_sparse_workspace_bytes(p);
  auto workspace = at::empty({int64_t((bytes + 3) / 4)}, q.options().dtype(at::kInt));
  run_kernel(op, [&] {
    cuda::block_sparse_attention_forward(p, dtype, workspace.data_ptr(),
                                         c10::cuda::getCurrentCUDAStream().stream());
  });
  return {out, lse};
}

Tensor block_mass_cuda(const Tensor& q, const Tensor& k, const Tensor& lse, int64_t block_q,
                       int64_t block_k, const c10::optional<Tensor>& q_block_valid,
                       const c10::optional<Tensor>& kv_block_valid, c10::optional<double> scale) {
  const char* op = "sparseplan::block_mass";
  check_mass_args(op, q, k, lse, block_q, block_k, q_block_valid, kv_block_valid);
  const auto dtype = kernel_dtype(op, q);
  c10::cuda::CUDAGuard guard(q.device());
  const int64_t nqb = blocks(q.size(1), block_q), nkb = blocks(k.size(1), block_k);
  auto mass = at::empty({q.size(0), q.size(2), nqb, nkb}, q.options().dtype(at::kFloat));
  cuda::BlockMassParams p;
  p.q = q.data_ptr(), p.k = k.data_ptr(), p.lse = lse.data_ptr<float>();
  p.mass = mass.data_ptr<float>();
  p.q_batch_stride = q.stride(0), p.q_row_stride = q.stride(1), p.q_head_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_row_stride = k.stride(1), p.k_head_stride = k.stride(2);
  p.batch = int(q.size(0)), p.heads = int(q.size(2)), p.kv_heads = int(k.size(2));
  p.q_len = int(q.size(1)), p.kv_len = int(k.size(1)), p.head_dim = int(q.size(3));
  p.scale = float(resolve_scale(op, scale, q.size(3)));
  p.block_q = int(block_q), p.block_k = int(block_k);
  p.q_block_valid = opt_ptr(q_block_valid);
  p.kv_block_valid = opt_ptr(kv_block_valid);
  run_kernel(
      op, [&] { cuda::block_mass_forward(p, dtype, c10::cuda::getCurrentCUDAStream().stream()); });
  return mass;
}

std::tuple<Tensor, Tensor> select_blocks_cuda(const Tensor& mass, double mass_target, int64_t top_k,
                                              int64_t min_blocks, int64_t max_blocks,
                                              const c10::optional<Tensor>& forced) {
  const char* op = "sparseplan::select_blocks";
  check_select_args(op, mass, forced);
  const auto rule = make_rule(op, mass_target, top_k, min_blocks, max_blocks);
  c10::cuda::CUDAGuard guard(mass.device());
  const int64_t B = mass.size(0), H = mass.size(1), nqb = mass.size(2), nkb = mass.size(3);
  Tensor f;
  int64_t num_forced = 0;
  if (forced.has_value()) {
    f = forced->to(at::kByte).contiguous();
    if (max_blocks > 0) num_forced = f.sum().item<int64_t>();  // sizes the output: one sync
  }
  // Columns per row at most: the cap (or top_k when nothing is forced), never below forced.
  int64_t per_row = nkb;
  if (max_blocks > 0)
    per_row = std::max(max_blocks, num_forced);
  else if (top_k > 0 && !forced.has_value())
    per_row = std::max(top_k, min_blocks);
  per_row = std::min(per_row, nkb);
  const int64_t rows = B * H * nqb;
  auto opts = mass.options().dtype(at::kInt);
  auto row_offsets = at::empty({B, H, nqb + 1}, opts);
  auto col_indices = at::empty({std::max<int64_t>(rows * per_row, 1)}, opts);
  const size_t bytes = cuda::block_select_workspace_bytes(rows, int(nkb));
  auto workspace = at::empty({int64_t(bytes)}, mass.options().dtype(at::kByte));
  run_kernel(op, [&] {
    cuda::block_select(rule, mass.data_ptr<float>(), int(B * H), int(nqb), int(nkb),
                       f.defined() ? f.data_ptr<uint8_t>() : nullptr,
                       row_offsets.data_ptr<int32_t>(), col_indices.data_ptr<int32_t>(),
                       workspace.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  });
  return {row_offsets, col_indices};
}

Tensor reorder_tokens_cuda(const Tensor& x, const Tensor& index) {
  const char* op = "sparseplan::reorder_tokens";
  check_reorder_args(op, x, index);
  c10::cuda::CUDAGuard guard(x.device());
  auto sizes = x.sizes().vec();
  sizes[1] = index.size(0);
  auto out = at::empty(sizes, x.options());
  const int64_t row_bytes = x.numel() == 0 ? 0 : x.stride(1) * int64_t(x.element_size());
  TORCH_CHECK(row_bytes % 16 == 0,
              message(op, ": x's token rows must be a multiple of 16 bytes, got ", row_bytes));
  if (out.numel() == 0) return out;
  run_kernel(op, [&] {
    cuda::gather_rows(x.data_ptr(), x.stride(0) * x.element_size(), x.size(1), out.data_ptr(),
                      out.stride(0) * out.element_size(), out.size(1), row_bytes, int(x.size(0)),
                      index.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream().stream());
  });
  return out;
}

std::tuple<Tensor, Tensor> video_block_sparse_attention_cuda(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& row_offsets,
    const Tensor& col_indices, c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block,
    bool tile_major, c10::optional<double> scale, const c10::optional<Tensor>& q_pair_order) {
  const char* op = "sparseplan::video_block_sparse_attention";
  const TileGeometry g =
      check_video_args(op, q, k, v, row_offsets, col_indices, grid, tile, block);
  check_pair_order(op, q, g.total_blocks, q_pair_order);
  const auto dtype = kernel_dtype(op, q);
  c10::cuda::CUDAGuard guard(q.device());
  if (!cuda::fused_tile_order_supported()) {  // gather, attend, scatter
    const VideoOrder order = video_order(g, tile_major, q.device());
    const auto tiled = [&](const Tensor& x) {
      return reorder_tokens_cuda(x.contiguous(), order.row_of_slot);
    };
    const auto [out, lse] =
        block_sparse_attention_cuda(tiled(q), tiled(k), tiled(v), row_offsets, col_indices,
                                    block, block, order.block_valid, scale, q_pair_order);
    return {reorder_tokens_cuda(out, order.slot_of_row),
            lse.index_select(2, order.slot_of_row.to(at::kLong))};
  }
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  auto p = attention_params(q, k, v, out, lse, resolve_scale(op, scale, q.size(3)));
  p.block_q = p.block_k = int(block);
  p.row_offsets = row_offsets.data_ptr<int32_t>();
  p.col_indices = col_indices.data_ptr<int32_t>();
  p.num_cols = col_indices.numel();
  p.video = {g.grid.frames, g.grid.height, g.grid.width, g.tile[0], g.tile[1], g.tile[2],
             tile_major};
  p.q_pair_order = opt_ptr(q_pair_order);
  const size_t bytes = cuda::block_sparse_workspace_bytes(p);
  auto workspace = at::empty({int64_t((bytes + 3) / 4)}, q.options().dtype(at::kInt));
  run_kernel(op, [&] {
    cuda::block_sparse_attention_forward(p, dtype, workspace.data_ptr(),
                                         c10::cuda::getCurrentCUDAStream().stream());
  });
  return {out, lse};
}

#endif  // SPARSEPLAN_OPS_CUDA

}  // namespace

// ---- Direct C++ entry points: through the dispatcher --------------------------------------------

std::tuple<Tensor, Tensor> dense_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                           c10::optional<double> scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sparseplan::dense_attention", "")
                       .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&,
                                                         const Tensor&, c10::optional<double>)>();
  return op.call(q, k, v, scale);
}

std::tuple<Tensor, Tensor> block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const Tensor& row_offsets,
                                                  const Tensor& col_indices, int64_t block_q,
                                                  int64_t block_k,
                                                  const c10::optional<Tensor>& kv_block_valid,
                                                  c10::optional<double> scale,
                                                  const c10::optional<Tensor>& q_pair_order) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sparseplan::block_sparse_attention", "")
          .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                            const Tensor&, const Tensor&, int64_t, int64_t,
                                            const c10::optional<Tensor>&, c10::optional<double>,
                                            const c10::optional<Tensor>&)>();
  return op.call(q, k, v, row_offsets, col_indices, block_q, block_k, kv_block_valid, scale,
                 q_pair_order);
}

std::tuple<Tensor, Tensor> video_block_sparse_attention(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& row_offsets,
    const Tensor& col_indices, c10::IntArrayRef grid, c10::IntArrayRef tile, int64_t block,
    bool tile_major, c10::optional<double> scale, const c10::optional<Tensor>& q_pair_order) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sparseplan::video_block_sparse_attention", "")
          .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                            const Tensor&, const Tensor&, c10::IntArrayRef,
                                            c10::IntArrayRef, int64_t, bool,
                                            c10::optional<double>, const c10::optional<Tensor>&)>();
  return op.call(q, k, v, row_offsets, col_indices, grid, tile, block, tile_major, scale,
                 q_pair_order);
}

Tensor block_mass(const Tensor& q, const Tensor& k, const Tensor& lse, int64_t block_q,
                  int64_t block_k, const c10::optional<Tensor>& q_block_valid,
                  const c10::optional<Tensor>& kv_block_valid, c10::optional<double> scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sparseplan::block_mass", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t,
                                     const c10::optional<Tensor>&, const c10::optional<Tensor>&,
                                     c10::optional<double>)>();
  return op.call(q, k, lse, block_q, block_k, q_block_valid, kv_block_valid, scale);
}

std::tuple<Tensor, Tensor> select_blocks(const Tensor& mass, double mass_target, int64_t top_k,
                                         int64_t min_blocks, int64_t max_blocks,
                                         const c10::optional<Tensor>& forced) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sparseplan::select_blocks", "")
                       .typed<std::tuple<Tensor, Tensor>(const Tensor&, double, int64_t, int64_t,
                                                         int64_t, const c10::optional<Tensor>&)>();
  return op.call(mass, mass_target, top_k, min_blocks, max_blocks, forced);
}

Tensor reorder_tokens(const Tensor& x, const Tensor& index) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sparseplan::reorder_tokens", "")
                       .typed<Tensor(const Tensor&, const Tensor&)>();
  return op.call(x, index);
}

}  // namespace sparseplan::ops

TORCH_LIBRARY(sparseplan, m) {
  m.def("dense_attention(Tensor q, Tensor k, Tensor v, float? scale=None) -> (Tensor, Tensor)");
  m.def(
      "block_sparse_attention(Tensor q, Tensor k, Tensor v, Tensor row_offsets, "
      "Tensor col_indices, int block_q, int block_k, Tensor? kv_block_valid=None, "
      "float? scale=None, Tensor? q_pair_order=None) -> (Tensor, Tensor)");
  m.def(
      "video_block_sparse_attention(Tensor q, Tensor k, Tensor v, Tensor row_offsets, "
      "Tensor col_indices, int[] grid, int[] tile, int block, bool tile_major=False, "
      "float? scale=None, Tensor? q_pair_order=None) -> (Tensor, Tensor)");
  m.def(
      "block_mass(Tensor q, Tensor k, Tensor lse, int block_q, int block_k, "
      "Tensor? q_block_valid=None, Tensor? kv_block_valid=None, float? scale=None) -> Tensor");
  m.def(
      "select_blocks(Tensor mass, float mass_target, int top_k=0, int min_blocks=1, "
      "int max_blocks=0, Tensor? forced=None) -> (Tensor, Tensor)");
  m.def("reorder_tokens(Tensor x, Tensor index) -> Tensor");
}

TORCH_LIBRARY_IMPL(sparseplan, CPU, m) {
  using namespace sparseplan::ops;
  m.impl("dense_attention", &dense_attention_cpu);
  m.impl("block_sparse_attention", &block_sparse_attention_cpu);
  m.impl("video_block_sparse_attention", &video_block_sparse_attention_cpu);
  m.impl("block_mass", &block_mass_cpu);
  m.impl("select_blocks", &select_blocks_cpu);
  m.impl("reorder_tokens", &reorder_tokens_cpu);
}

#ifdef SPARSEPLAN_OPS_CUDA
TORCH_LIBRARY_IMPL(sparseplan, CUDA, m) {
  using namespace sparseplan::ops;
  m.impl("dense_attention", &dense_attention_cuda);
  m.impl("block_sparse_attention", &block_sparse_attention_cuda);
  m.impl("video_block_sparse_attention", &video_block_sparse_attention_cuda);
  m.impl("block_mass", &block_mass_cuda);
  m.impl("select_blocks", &select_blocks_cuda);
  m.impl("reorder_tokens", &reorder_tokens_cuda);
}
#endif
