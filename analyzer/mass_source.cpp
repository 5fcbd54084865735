#include "analyzer/mass_source.h"

#include <algorithm>
#include <stdexcept>

#include "base/checked_math.h"
#include "plan/limits.h"

namespace sparseplan {
namespace {

std::string grid_text(const Grid& g) {
  return std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" + std::to_string(g.width);
}

void check_layer_head(const SourceInfo& info, const std::array<int, 3>& tile, int layer,
                      int head) {
  if (!info.has_tile(tile))
    throw std::invalid_argument("the captures hold no tile " + tile_text(tile));
  if (!info.has_layer(layer))
    throw std::invalid_argument("layer " + std::to_string(layer) + " was not captured");
  if (head < 0 || head >= info.model.heads)
    throw std::invalid_argument("head " + std::to_string(head) + " outside [0, " +
                                std::to_string(info.model.heads) + ")");
}

}  // namespace

std::string tile_text(const std::array<int, 3>& tile) {
  return std::to_string(tile[0]) + "x" + std::to_string(tile[1]) + "x" + std::to_string(tile[2]);
}

bool SourceInfo::has_tile(const std::array<int, 3>& tile) const {
  return std::find(tiles.begin(), tiles.end(), tile) != tiles.end();
}

bool SourceInfo::has_layer(int layer) const {
  return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

TileGeometry SourceInfo::geometry(const std::array<int, 3>& tile) const {
  return make_tile_geometry(grid, tile, block_size, text);
}

CaptureSet::CaptureSet(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::invalid_argument("no capture files given");
  for (const std::string& path : paths) {
    readers_.emplace_back(path);
    infos_.push_back(readers_.back().info());
  }
  const CaptureInfo& first = infos_.front();
  info_.model = first.model;
  info_.grid = first.grid;
  info_.text = first.text;
  info_.block_size = first.block_size;
  info_.tiles = first.tiles;
  info_.layers = first.layers;
  if (info_.layers.empty())
    for (int l = 0; l < first.model.layers; ++l) info_.layers.push_back(l);
  for (size_t i = 0; i < infos_.size(); ++i) {
    const CaptureInfo& c = infos_[i];
    const std::string what = "capture " + paths[i] + " does not match " + paths[0] + ": ";
    if (c.model.id != first.model.id)
      throw std::invalid_argument(what + "model '" + c.model.id + "' vs '" + first.model.id + "'");
    if (c.model.layers != first.model.layers || c.model.heads != first.model.heads)
      throw std::invalid_argument(what + "model shape " + std::to_string(c.model.layers) + "x" +
                                  std::to_string(c.model.heads) + " layers x heads vs " +
                                  std::to_string(first.model.layers) + "x" +
                                  std::to_string(first.model.heads));
    if (!(c.grid == first.grid))
      throw std::invalid_argument(what + "grid " + grid_text(c.grid) + " vs " + grid_text(first.grid));
    if (c.text.position != first.text.position || c.text.tokens != first.text.tokens)
      throw std::invalid_argument(what + "text layout (" + std::to_string(c.text.tokens) + " vs " +
                                  std::to_string(first.text.tokens) + " tokens)");
    if (!c.layers.empty() && c.layers != info_.layers)
      throw std::invalid_argument(what + "captured layers differ");
    if (c.block_size != first.block_size)
      throw std::invalid_argument(what + "block size " + std::to_string(c.block_size) + " vs " +
                                  std::to_string(first.block_size));
    std::vector<std::array<int, 3>> common;
    for (const auto& t : info_.tiles)
      if (std::find(c.tiles.begin(), c.tiles.end(), t) != c.tiles.end()) common.push_back(t);
    info_.tiles = common;
    // Checked before the per-sample lists below are filled: the sizes come from the files, and
    // every head read holds all samples of the smallest tile shape at least.
    const int64_t samples = checked_mul(c.num_prompts, int64_t(c.steps.size()),
                                        "capture " + paths[i] + ": prompts x steps");
    int smallest = kMaxBlocks;
    for (const auto& t : info_.tiles) smallest = std::min(smallest, capture_num_blocks(c, t));
    check_mass_size(checked_add(info_.samples, samples, "samples of the captures"), smallest,
                    "block mass of one head over the captures up to " + paths[i]);
    const int prompt_base = info_.samples == 0 ? 0 : info_.sample_prompt.back() + 1;
    for (int p = 0; p < c.num_prompts; ++p)
      for (int s = 0; s < int(c.steps.size()); ++s) {
        info_.sample_prompt.push_back(prompt_base + p);
        info_.sample_step.push_back(s);
      }
    info_.samples += int(samples);
    info_.captures.push_back(paths[i]);
  }
  if (info_.tiles.empty())
    throw std::invalid_argument("the captures share no tile shape");
  if (info_.samples == 0) throw std::invalid_argument("the captures hold no samples");
}

HeadMass CaptureSet::head_mass(const std::array<int, 3>& tile, int layer, int head) const {
  check_layer_head(info_, tile, layer, head);
  const int n = capture_num_blocks(infos_.front(), tile);
  HeadMass mass;
  mass.blocks = n;
  mass.samples = info_.samples;
  mass.values.reserve(size_t(check_mass_size(info_.samples, n, "block mass of one head")));
  std::lock_guard<std::mutex> lock(mutex_);
  for (const CaptureReader& r : readers_) {
    const std::vector<float> v = r.head_block_mass(tile, layer, head);
    if (v.size() != size_t(r.info().num_samples()) * n * n)
      throw std::runtime_error("capture " + r.info().path + ": block mass of layer " +
                               std::to_string(layer) + " head " + std::to_string(head) +
                               " has an unexpected size");
    mass.values.insert(mass.values.end(), v.begin(), v.end());
  }
  return mass;
}

SyntheticSource::SyntheticSource(SyntheticSpec spec) : spec_(std::move(spec)) {
  info_.model = spec_.model;
  info_.grid = spec_.grid;
  info_.text = spec_.text;
  info_.block_size = spec_.block_size;
  info_.tiles = spec_.tiles;
  for (int l = 0; l < spec_.model.layers; ++l) info_.layers.push_back(l);
  info_.samples = spec_.prompts * spec_.steps;
  for (int p = 0; p < spec_.prompts; ++p)
    for (int s = 0; s < spec_.steps; ++s) {
      info_.sample_prompt.push_back(spec_.first_prompt + p);
      info_.sample_step.push_back(s);
    }
  info_.captures.push_back("synthetic");
}

HeadMass SyntheticSource::head_mass(const std::array<int, 3>& tile, int layer, int head) const {
  check_layer_head(info_, tile, layer, head);
  return synthetic_head_mass(spec_, info_.geometry(tile), layer, head);
}

}  // namespace sparseplan
