#include "runtime/capture_backend.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "runtime/block_mass_torch.h"
#include "io/capture_file.h"

namespace sparseplan {
namespace {

bool contains(const std::vector<int>& sorted, int value) {
  return std::binary_search(sorted.begin(), sorted.end(), value);
}

std::string grid_text(const Grid& g) {
  return std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" + std::to_string(g.width);
}

}  // namespace

CaptureBackend::CaptureBackend(CaptureWriter& writer, int64_t chunk_rows, AttentionImpl attention)
    : writer_(writer), attention_(attention) {
  const CaptureInfo& info = writer.info();
  BlockMassOptions options;
  options.block_size = info.block_size;
  options.tiles = info.tiles;
  options.chunk_rows = chunk_rows;
  options.attention = attention;
  mass_ = std::make_unique<BlockMassComputer>(info.grid, info.text, options);
}

CaptureBackend::~CaptureBackend() = default;

void CaptureBackend::set_prompt(int prompt) {
  if (prompt < 0 || prompt >= writer_.info().num_prompts)
    throw std::invalid_argument("capture: prompt " + std::to_string(prompt) + " out of range [0, " +
                                std::to_string(writer_.info().num_prompts) + ")");
  prompt_ = prompt;
}

int64_t CaptureBackend::calls_per_prompt() const {
  return int64_t(writer_.info().steps.size()) * int64_t(writer_.info().layers.size());
}

bool CaptureBackend::captures(const AttentionCall& call) const {
  const CaptureInfo& info = writer_.info();
  return call.branch == info.branch && contains(info.steps, call.step) &&
         contains(info.layers, call.layer);
}

AttentionFn CaptureBackend::attention() {
  return [this](const AttentionCall& call, const torch::Tensor& q, const torch::Tensor& k,
                const torch::Tensor& v) { return (*this)(call, q, k, v); };
}

torch::Tensor CaptureBackend::operator()(const AttentionCall& call, const torch::Tensor& q,
                                         const torch::Tensor& k, const torch::Tensor& v) {
  if (!captures(call)) return run_dense_attention(q, k, v, attention_);
  const CaptureInfo& info = writer_.info();
  if (!(call.grid == info.grid))
    throw std::invalid_argument("capture: the model's token grid " + grid_text(call.grid) +
                                " differs from the capture's " + grid_text(info.grid));
  if (call.text.position != info.text.position || call.text.tokens != info.text.tokens)
    throw std::invalid_argument("capture: the call's text layout differs from the capture's");
  if (call.token_order.defined())
    throw std::invalid_argument("capture: block mass is recorded in model token order; run the "
                                "model's token stream in model order while capturing");
  if (q.dim() != 4 || q.size(2) != info.model.heads || q.size(3) != info.model.head_dim)
    throw std::invalid_argument("capture: q must be [B, N, " + std::to_string(info.model.heads) +
                                ", " + std::to_string(info.model.head_dim) + "]");
  if (prompt_ + q.size(0) > info.num_prompts)
    throw std::invalid_argument("capture: batch of " + std::to_string(q.size(0)) +
                                " from prompt " + std::to_string(prompt_) + " exceeds the " +
                                std::to_string(info.num_prompts) + " prompts");

  AttentionWithMass r = (*mass_)(q, k, v);
  const int s = int(std::lower_bound(info.steps.begin(), info.steps.end(), call.step) -
                    info.steps.begin());
  writer_.set_timestep(s, call.timestep);
  for (int64_t b = 0; b < q.size(0); ++b) {
    const int p = prompt_ + int(b);
    for (int h = 0; h < info.model.heads; ++h) {
      for (const TileBlockMass& t : r.tiles) {
        writer_.write_head_mass(t.tile, p, s, call.layer, h,
                                t.mass[b][h].contiguous().data_ptr<float>());
        if (info.has_lse_stats)
          writer_.write_lse_stats(t.tile, p, s, call.layer, h,
                                  t.lse_mean[b][h].contiguous().data_ptr<float>(),
                                  t.lse_min[b][h].contiguous().data_ptr<float>(),
                                  t.lse_max[b][h].contiguous().data_ptr<float>());
      }
      if (info.has_full_lse)
        writer_.write_full_lse(p, s, call.layer, h, r.lse[b][h].contiguous().data_ptr<float>());
    }
  }
  ++captured_calls_;
  return r.out;
}

}  // namespace sparseplan
