// Where the search, the comparison and the analyzer get block attention mass from: one or more
// capture files of the same model and grid (samples concatenated, prompts numbered across
// files), or a synthetic generator. Reads are serialised: HDF5 is not built thread-safe.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/capture_file.h"
#include "plan/plan.h"
#include "plan/tile_geometry.h"
#include "analyzer/recall.h"
#include "analyzer/synthetic_capture.h"

namespace sparseplan {

struct SourceInfo {
  ModelInfo model;
  Grid grid;
  TextLayout text;
  int block_size = 64;
  std::vector<std::array<int, 3>> tiles;  // tile shapes every input holds
  std::vector<int> layers;                // captured model layers (all of them by default)
  int samples = 0;
  std::vector<int> sample_prompt;  // [samples]: prompt number across all inputs
  std::vector<int> sample_step;    // [samples]: captured step index within its input
  std::vector<std::string> captures;

  bool has_tile(const std::array<int, 3>& tile) const;
  bool has_layer(int layer) const;
  TileGeometry geometry(const std::array<int, 3>& tile) const;
};

class MassSource {
 public:
  virtual ~MassSource() = default;
  virtual const SourceInfo& info() const = 0;
  // Thread-safe. Throws std::invalid_argument for a tile, layer or head the source lacks.
  virtual HeadMass head_mass(const std::array<int, 3>& tile, int layer, int head) const = 0;
};

class CaptureSet : public MassSource {
 public:
  // Throws std::invalid_argument naming the file and field when the captures disagree on
  // model, grid, text layout or block size, or share no tile shape. head_mass() throws
  // std::runtime_error naming the capture, head, sample and query block when a row of block
  // mass of a query block holding tokens does not sum to 1 (within 1e-2).
  explicit CaptureSet(const std::vector<std::string>& paths);
  const SourceInfo& info() const override { return info_; }
  const std::vector<CaptureInfo>& capture_infos() const { return infos_; }
  HeadMass head_mass(const std::array<int, 3>& tile, int layer, int head) const override;

 private:
  SourceInfo info_;
  std::vector<CaptureInfo> infos_;
  std::vector<CaptureReader> readers_;
  mutable std::mutex mutex_;
};

class SyntheticSource : public MassSource {
 public:
  explicit SyntheticSource(SyntheticSpec spec);
  const SourceInfo& info() const override { return info_; }
  HeadMass head_mass(const std::array<int, 3>& tile, int layer, int head) const override;

 private:
  SyntheticSpec spec_;
  SourceInfo info_;
};

std::string tile_text(const std::array<int, 3>& tile);  // "4x4x4"

}  // namespace sparseplan
