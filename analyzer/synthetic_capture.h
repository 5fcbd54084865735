// Synthetic block attention mass with planted patterns, for tests and benchmarks: what a
// capture of a real model would hold if its heads followed the textbook patterns exactly.
// Mass is made per query block from the block centres (mean token position), so the same
// planted head looks the same under every tile shape.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/capture_file.h"
#include "plan/tile_geometry.h"
#include "analyzer/recall.h"

namespace sparseplan {

enum class PlantedPattern {
  LocalWindow,     // Gaussian around the query in frames, rows and columns
  SpatialOnly,     // the query's own frame, uniform over space
  TemporalStripe,  // the query's spatial position in every frame
  Cross,           // SpatialOnly + TemporalStripe
  FirstFrameSink,  // LocalWindow plus most mass on the first frame
  GlobalBlocks,    // LocalWindow plus most mass on a few fixed key blocks
  Diffuse,         // nearly uniform
  PerPrompt,       // a few key blocks per query, different for every prompt
};

const char* planted_pattern_name(PlantedPattern p);
PlantedPattern parse_planted_pattern(const std::string& name);  // throws std::invalid_argument

struct PlantedHead {
  PlantedPattern pattern = PlantedPattern::LocalWindow;
  // Gaussian widths in tokens (frames, rows, columns) for the local parts of a pattern.
  double sigma_f = 1.5, sigma_h = 3.0, sigma_w = 3.0;
  double noise = 0.3;     // log-normal noise per (sample, query, key) block
  double floor = 0.002;   // share of each row spread uniformly (real heads are never exact)
};

struct SyntheticSpec {
  ModelInfo model{"synthetic", 2, 4, 64};
  Grid grid{8, 16, 16};
  TextLayout text;
  int block_size = 64;
  std::vector<std::array<int, 3>> tiles{{2, 4, 8}};
  int prompts = 2;
  int first_prompt = 0;  // prompts are numbered from here: held-out captures use other numbers
  int steps = 2;
  uint64_t seed = 1;     // the "model": which pattern and widths every head has
  // [layer][head]; when empty, heads cycle through the patterns with varied widths.
  std::vector<std::vector<PlantedHead>> heads;
};

PlantedHead planted_head(const SyntheticSpec& spec, int layer, int head);

// [prompts*steps][nb][nb] for one head under one tile shape.
HeadMass synthetic_head_mass(const SyntheticSpec& spec, const TileGeometry& geometry, int layer,
                             int head);

CaptureInfo synthetic_capture_info(const SyntheticSpec& spec);

// Writes a complete capture file (no LSE statistics). `progress` is called after each head.
void write_synthetic_capture(const std::string& path, const SyntheticSpec& spec,
                             const std::function<void()>& progress = {});

}  // namespace sparseplan
