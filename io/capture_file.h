// Capture files: HDF5 files that record, for a set of prompts, denoising steps, layers and
// heads, the exact block attention mass in tile order and per-query-block LSE statistics of a
// real model run. The layout is documented in docs/capture-format.md.
//
// Indexing used throughout: p = prompt index (each prompt has its own seed), s = index into
// CaptureInfo::steps (not the step number itself), layer = the model's layer number (one of
// CaptureInfo::layers; all layers unless the capture chose some), head = head number. A
// "sample" is one (prompt, captured step) pair, numbered p * S + s where S = steps.size().
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plan/plan.h"

namespace sparseplan {

// Format 2 stores strings with a fixed length; format 1 (still read) kept them as
// variable-length strings in the HDF5 global heap.
constexpr const char* kCaptureFormat = "sparseplan-capture/2";
constexpr const char* kCaptureFormatV1 = "sparseplan-capture/1";

// Rows of block mass may differ from 1 by this much (float32 sums on the CPU stay below 1e-4;
// the GPU kernels' bf16 probabilities below 1e-2).
constexpr double kBlockMassRowTolerance = 1e-2;

struct CaptureInfo {
  std::string path;  // filled in by the reader; ignored by the writer
  ModelInfo model;
  Grid grid;
  TextLayout text;
  int block_size = 64;
  std::vector<std::array<int, 3>> tiles;  // (tf, th, tw) of every captured tile shape
  int num_prompts = 0;
  std::vector<std::string> prompts;       // [num_prompts]
  std::vector<int64_t> seeds;             // [num_prompts]
  std::vector<int> steps;                 // captured denoising step numbers, strictly increasing
  // Captured model layers, strictly increasing. Writer: empty means all model.layers layers;
  // the reader always fills it.
  std::vector<int> layers;
  std::vector<double> timesteps;          // [steps.size()]: the model's timestep (1000 * sigma)

  // Provenance: free-form but recorded. JSON strings must parse ("{}" when unknown).
  std::string model_config_json = "{}";   // the model's config.json
  std::string sampler_json = "{}";        // sampler settings: steps, shift, guidance, ...
  std::string tool_version;               // filled by the writer when empty
  int branch = 0;                         // guidance branch captured: 0 conditional, 1 uncond.
  bool has_lse_stats = false;             // reader: lse_mean/lse_min/lse_max present
  bool has_full_lse = false;              // reader: full per-token LSE present

  int num_samples() const { return num_prompts * int(steps.size()); }
};

// What makes a capture's metadata valid, for the writer and the reader alike: model sizes, grid,
// tiles (geometry and element counts), block size, prompts/seeds count, steps and timesteps,
// branch, JSON strings. Throws std::invalid_argument naming the field.
void validate_capture_info(const CaptureInfo& info);

// The problem with one [nb][nb] block mass matrix, or "" when it has none: every value finite
// and >= 0, zero in key blocks without tokens, rows of query blocks with tokens summing to 1
// (kBlockMassRowTolerance) and rows of those without tokens to 0.
std::string block_mass_problem(const float* mass, int nb, const std::vector<int32_t>& block_valid);

// Number of blocks (query blocks = key blocks) of the padded tile-order sequence for `tile`.
int capture_num_blocks(const CaptureInfo& info, const std::array<int, 3>& tile);

// "4x4x4" <-> {4,4,4}; the name of the group under /tiles. Parsing throws std::invalid_argument.
std::string tile_name(const std::array<int, 3>& tile);
std::array<int, 3> parse_tile_name(const std::string& name);

// ---- Reading -------------------------------------------------------------------------------
// Every reader throws std::runtime_error naming the file and the problem when the file is
// missing, not HDF5, truncated, incomplete (interrupted capture), of another format, or lacks a
// dataset, and naming the attribute or dataset when a value is invalid: the reader checks
// everything against validate_capture_info, the tile geometry (block_valid, token_of_slot) and
// block_mass_problem (each head's mass as it is read). std::invalid_argument for a tile, layer
// or head the file does not have. Format-1 files are read too; their strings are read in a
// child process with a time limit (a corrupt global heap hangs libhdf5), so open captures
// before starting threads that call HDF5.

CaptureInfo read_capture_info(const std::string& path);

// [P*S][nqb][nkb] flattened (sample index p*S + s), rows sum to 1 (query blocks with no valid
// query rows are all zero).
std::vector<float> read_head_block_mass(const std::string& path, const std::array<int, 3>& tile,
                                        int layer, int head);

struct LseStats {
  std::vector<float> mean, min, max;  // each [P*S][nqb]
};
LseStats read_head_lse_stats(const std::string& path, const std::array<int, 3>& tile, int layer,
                             int head);

// [nb]: valid tokens of each block of the tile-order sequence.
std::vector<int32_t> read_block_valid(const std::string& path, const std::array<int, 3>& tile);

// Keeps the file open for many reads (the free functions above open it per call).
class CaptureReader {
 public:
  explicit CaptureReader(const std::string& path);
  ~CaptureReader();
  CaptureReader(CaptureReader&&) noexcept;
  CaptureReader& operator=(CaptureReader&&) noexcept;

  const CaptureInfo& info() const;
  std::vector<float> head_block_mass(const std::array<int, 3>& tile, int layer, int head) const;
  LseStats head_lse_stats(const std::array<int, 3>& tile, int layer, int head) const;
  std::vector<int32_t> block_valid(const std::array<int, 3>& tile) const;
  // [P*S][N] LSE in model token order; throws when the capture has no full LSE.
  std::vector<float> head_full_lse(int layer, int head) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Writing -------------------------------------------------------------------------------
// Writes to `path + ".tmp-<pid>"` (a TemporaryFile, base/temporary_file.h) and renames it to
// `path` in finish(), after writing the `complete` attribute; destroying the writer without
// finish(), SIGINT and SIGTERM remove the temporary file, so an interrupted capture never leaves
// a file that looks complete. Usable without a model (synthetic captures): fill a CaptureInfo,
// write every head, finish(). Writes refuse block mass that block_mass_problem objects to.
class CaptureWriter {
 public:
  struct Options {
    bool lse_stats = true;   // create lse_mean/min/max datasets; then all must be written
    bool full_lse = false;   // create the full per-token LSE dataset; then all must be written
    int compression = 0;     // gzip level 0-9 for the mass matrices (0: none, fastest reads)
  };

  // Validates `info` (model sizes, grid, tiles, block size, prompts/seeds count, steps and
  // timesteps) and throws std::invalid_argument naming the field.
  CaptureWriter(const std::string& path, const CaptureInfo& info);
  CaptureWriter(const std::string& path, const CaptureInfo& info, const Options& options);
  ~CaptureWriter();
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;

  const CaptureInfo& info() const;

  // mass: [nqb][nkb] row-major float32 for (tile, prompt p, step index s, layer, head).
  void write_head_mass(const std::array<int, 3>& tile, int p, int s, int layer, int head,
                       const float* mass);
  // mean/min/max: [nqb] each.
  void write_lse_stats(const std::array<int, 3>& tile, int p, int s, int layer, int head,
                       const float* mean, const float* min, const float* max);
  // lse: [N] in model token order (N = text + video tokens).
  void write_full_lse(int p, int s, int layer, int head, const float* lse);
  // The timestep actually seen at step index s (overrides info.timesteps[s]).
  void set_timestep(int s, double timestep);

  // Throws std::runtime_error naming the first (tile, p, s, layer, head) never written; else
  // marks the file complete and renames it into place.
  void finish();
  bool finished() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Concatenates captures along the prompt axis into `out` (atomically). The inputs must agree on
// model, grid, text layout, block size, tiles, steps and which LSE datasets they hold; throws
// std::invalid_argument naming the first mismatch.
void merge_captures(const std::vector<std::string>& inputs, const std::string& out);

}  // namespace sparseplan
