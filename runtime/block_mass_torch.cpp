#include "runtime/block_mass_torch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include <torch/types.h>
#include <torch/utils.h>

#include "plan/tile_geometry.h"
#include "runtime/torch_ops.h"
#include "runtime/tensor_text.h"

namespace sparseplan {
namespace {

torch::Tensor to_device_long(const std::vector<int64_t>& values, const torch::Device& device) {
  return torch::from_blob(const_cast<int64_t*>(values.data()), {int64_t(values.size())},
                          torch::kInt64)
      .to(device);
}

}  // namespace

BlockMassComputer::BlockMassComputer(const Grid& grid, const TextLayout& text,
                                     BlockMassOptions options)
    : grid_(grid), text_(text), options_(std::move(options)) {
  if (options_.tiles.empty()) throw std::invalid_argument("block mass: no tile shape given");
  if (options_.chunk_rows < 0)
    throw std::invalid_argument("block mass: chunk_rows must be >= 0");
  for (const auto& tile : options_.tiles) {
    const TileGeometry g = make_tile_geometry(grid, tile, options_.block_size, text);
    const TokenOrder order = make_token_order(g);
    tokens_ = g.sequence_tokens();
    TileMaps m;
    m.tile = tile;
    m.num_blocks = g.total_blocks;
    m.block_size = g.block_size;
    m.column_of_slot.resize(order.token_of_slot.size());
    for (size_t i = 0; i < order.token_of_slot.size(); ++i)
      m.column_of_slot[i] = order.token_of_slot[i] < 0 ? tokens_ : order.token_of_slot[i];
    m.block_of_token.resize(order.slot_of_token.size());
    for (size_t i = 0; i < order.slot_of_token.size(); ++i)
      m.block_of_token[i] = order.slot_of_token[i] / g.block_size;
    m.block_valid.assign(order.block_valid.begin(), order.block_valid.end());
    maps_.push_back(std::move(m));
  }
}

bool BlockMassComputer::uses_kernels(const torch::Tensor& q) const {
  return !options_.float64 && (options_.block_size == 64 || options_.block_size == 128) &&
         dense_kernel_runs(q, options_.attention);
}

AttentionWithMass BlockMassComputer::with_kernels(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v) const {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  const torch::Device device = q.device();
  const double inf = std::numeric_limits<double>::infinity();
  auto [out, lse] = dense_attention_kernel(q, k, v);  // lse [B, H, N] on the device
  const auto dtype = q.scalar_type() == torch::kHalf ? torch::kHalf : torch::kBFloat16;
  const torch::Tensor q16 = q.to(dtype).contiguous(), k16 = k.to(dtype).contiguous();
  // LSE with one extra column per pad value, so a gather by slot (padding -> column N) fills
  // padding with a value that never changes the statistic.
  const auto lse_padded = [&](double pad) {
    return torch::cat({lse, torch::full({B, H, 1}, pad, lse.options())}, 2);
  };
  const torch::Tensor lse_inf = lse_padded(-inf), lse_zero = lse_padded(0.0),
                      lse_pos = lse_padded(inf);

  AttentionWithMass result;
  result.out = out;
  result.lse = lse.cpu();
  for (const TileMaps& m : maps_) {
    std::vector<int32_t> token_of_slot(m.column_of_slot.size());
    for (size_t i = 0; i < token_of_slot.size(); ++i)
      token_of_slot[i] = m.column_of_slot[i] == N ? -1 : int32_t(m.column_of_slot[i]);
    const torch::Tensor gather32 =
        torch::tensor(at::ArrayRef<int32_t>(token_of_slot), torch::kInt32).to(device);
    const torch::Tensor column = to_device_long(m.column_of_slot, device);
    std::vector<int32_t> valid(m.block_valid.begin(), m.block_valid.end());
    const torch::Tensor valid32 = torch::tensor(at::ArrayRef<int32_t>(valid), torch::kInt32).to(device);
    const torch::Tensor q_tiles = ops::reorder_tokens(q16, gather32);
    const torch::Tensor k_tiles = ops::reorder_tokens(k16, gather32);
    const torch::Tensor per_slot = lse_inf.index_select(2, column).contiguous();  // [B, H, slots]
    TileBlockMass t;
    t.tile = m.tile;
    t.num_blocks = m.num_blocks;
    t.mass = ops::block_mass(q_tiles, k_tiles, per_slot, m.block_size, m.block_size, valid32,
                             valid32, c10::nullopt)
                 .cpu();
    const auto blocks = [&](const torch::Tensor& padded) {
      return padded.index_select(2, column).view({B, H, m.num_blocks, m.block_size});
    };
    const torch::Tensor empty = valid32.eq(0).view({1, 1, -1});
    const torch::Tensor divisor = valid32.clamp_min(1).to(torch::kFloat32).view({1, 1, -1});
    t.lse_mean = blocks(lse_zero).sum(3).div_(divisor).masked_fill_(empty, -inf).cpu();
    t.lse_min = std::get<0>(blocks(lse_pos).min(3)).masked_fill_(empty, -inf).cpu();
    t.lse_max = std::get<0>(blocks(lse_inf).max(3)).cpu();
    result.tiles.push_back(std::move(t));
  }
  return result;
}

AttentionWithMass BlockMassComputer::operator()(const torch::Tensor& q, const torch::Tensor& k,
                                                const torch::Tensor& v) const {
  torch::NoGradGuard no_grad;
  if (q.dim() != 4 || k.sizes() != q.sizes() || v.sizes() != q.sizes())
    throw std::invalid_argument("block mass: q, k, v must all be [B, N, H, D]; got q " +
                                shape_text(q) + ", k " + shape_text(k) + ", v " + shape_text(v));
  if (q.size(1) != tokens_)
    throw std::invalid_argument("block mass: q has " + std::to_string(q.size(1)) +
                                " tokens, the grid and text give " + std::to_string(tokens_));
  if (uses_kernels(q)) return with_kernels(q, k, v);
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), D = q.size(3);
  const torch::Device device = q.device();
  const auto dtype = options_.float64 ? torch::kFloat64 : torch::kFloat32;
  const auto fopts = torch::TensorOptions().dtype(dtype).device(device);
  const double scale = 1.0 / std::sqrt(double(D));
  const double inf = std::numeric_limits<double>::infinity();
  int64_t chunk = options_.chunk_rows;
  if (chunk == 0) chunk = std::clamp<int64_t>((int64_t(64) << 20) / std::max<int64_t>(1, H * N), 16, 2048);

  struct DeviceMaps {
    torch::Tensor column_of_slot, block_of_token, block_valid;
  };
  std::vector<DeviceMaps> dev;
  for (const TileMaps& m : maps_)
    dev.push_back({to_device_long(m.column_of_slot, device),
                   to_device_long(m.block_of_token, device),
                   torch::from_blob(const_cast<float*>(m.block_valid.data()),
                                    {int64_t(m.block_valid.size())}, torch::kFloat32)
                       .to(fopts)});

  AttentionWithMass result;
  result.out = torch::empty({B, N, H, D}, q.options().dtype(torch::kFloat32));
  result.lse = torch::empty({B, H, N}, torch::kFloat32);
  for (const TileMaps& m : maps_) {
    TileBlockMass t;
    t.tile = m.tile;
    t.num_blocks = m.num_blocks;
    t.mass = torch::empty({B, H, m.num_blocks, m.num_blocks}, torch::kFloat32);
    t.lse_mean = torch::empty({B, H, m.num_blocks}, torch::kFloat32);
    t.lse_min = torch::empty_like(t.lse_mean);
    t.lse_max = torch::empty_like(t.lse_mean);
    result.tiles.push_back(std::move(t));
  }

  for (int64_t b = 0; b < B; ++b) {
    // One extra key column (index N) with score -inf and a zero value row stands for the
    // padding slots of the tile-order sequence, so gathering columns by slot needs no mask.
    const torch::Tensor zero_row = torch::zeros({H, 1, D}, fopts);
    const torch::Tensor qh = q[b].transpose(0, 1).to(fopts).contiguous();                 // [H,N,D]
    const torch::Tensor kh = torch::cat({k[b].transpose(0, 1).to(fopts), zero_row}, 1);  // [H,N+1,D]
    const torch::Tensor vh = torch::cat({v[b].transpose(0, 1).to(fopts), zero_row}, 1);
    torch::Tensor out = torch::empty({H, N, D}, fopts);
    torch::Tensor lse = torch::empty({H, N}, fopts);
    std::vector<torch::Tensor> mass;
    for (const TileMaps& m : maps_) mass.push_back(torch::zeros({H, m.num_blocks, m.num_blocks}, fopts));

    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
      const int64_t r1 = std::min(N, r0 + chunk);
      const int64_t c = r1 - r0;
      // Scores transposed, keys x queries: gathering keys into tile order then moves whole
      // contiguous rows, and summing a block's keys runs along rows (4x faster than gathering
      // columns of queries x keys on a CPU).
      torch::Tensor p = torch::matmul(kh, qh.narrow(1, r0, c).transpose(1, 2)).mul_(scale);  // [H,N+1,c]
      p.select(1, N).fill_(-inf);
      const torch::Tensor row_lse = torch::logsumexp(p, 1, /*keepdim=*/true);  // [H,1,c]
      lse.narrow(1, r0, c).copy_(row_lse.squeeze(1));
      p.sub_(row_lse).exp_();
      out.narrow(1, r0, c).copy_(torch::matmul(p.transpose(1, 2), vh));
      for (size_t t = 0; t < maps_.size(); ++t) {
        const TileMaps& m = maps_[t];
        const torch::Tensor key_blocks = p.index_select(1, dev[t].column_of_slot)
                                             .view({H, m.num_blocks, m.block_size, c})
                                             .sum(2);  // [H,nb,c]
        mass[t].index_add_(1, dev[t].block_of_token.narrow(0, r0, c), key_blocks.transpose(1, 2));
      }
    }

    result.out[b].copy_(out.transpose(0, 1));
    result.lse[b].copy_(lse);
    for (size_t t = 0; t < maps_.size(); ++t) {
      const TileMaps& m = maps_[t];
      const torch::Tensor valid = dev[t].block_valid;
      const torch::Tensor empty = valid.eq(0);
      const torch::Tensor divisor = valid.clamp_min(1);
      TileBlockMass& tm = result.tiles[t];
      tm.mass[b].copy_(mass[t].div_(divisor.view({1, -1, 1})));
      // LSE per slot, with the padding column set so it never changes the statistic.
      auto per_slot = [&](double pad) {
        return torch::cat({lse, torch::full({H, 1}, pad, fopts)}, 1)
            .index_select(1, dev[t].column_of_slot)
            .view({H, m.num_blocks, m.block_size});
      };
      tm.lse_mean[b].copy_(per_slot(0.0).sum(2).div_(divisor).masked_fill_(empty, -inf));
      tm.lse_min[b].copy_(std::get<0>(per_slot(inf).min(2)).masked_fill_(empty, -inf));
      tm.lse_max[b].copy_(std::get<0>(per_slot(-inf).max(2)));
    }
  }
  return result;
}

}  // namespace sparseplan
