// Reads and writes safetensors checkpoints: single files and sharded checkpoints
// (`*.safetensors.index.json`). The header is checked strictly before any tensor is read (header
// length, JSON, dtype, shape, data offsets inside the file and matching dtype x shape), so a
// corrupt or truncated file is reported with the file and tensor it concerns instead of giving
// garbage weights. Tensors are streamed from disk one at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace sparseplan {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;             // "BF16", "F16" or "F32"
  std::vector<int64_t> shape;
  uint64_t begin = 0;            // byte offsets relative to the data section
  uint64_t end = 0;
};

// One .safetensors file. The constructor validates the whole header and throws
// std::runtime_error naming the file (and tensor) on any inconsistency.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::string path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // throws if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor in its stored dtype, on the CPU.
  torch::Tensor load(const std::string& name) const;
  // The tensor as float32 on the CPU, for weights: throws std::runtime_error naming the file and
  // the tensor when its dtype is not BF16, F16 or F32 or it holds a NaN or an infinity.
  torch::Tensor load_float32(const std::string& name) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  uint64_t file_size_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: either one .safetensors file or an index JSON whose `weight_map` sends each
// tensor to a shard next to the index. open() takes a file, an index, or a directory holding
// exactly one of `*.safetensors.index.json` / one `*.safetensors` model file.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::string& path);

  const std::string& source() const { return source_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  torch::Tensor load(const std::string& name) const;  // stored dtype, CPU; throws if absent
  torch::Tensor load_float32(const std::string& name) const;  // as SafetensorsFile's

 private:
  std::string source_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> shard_of_;
};

// Converts BF16/F16/F32 tensors to float32 (no copy when already float32).
torch::Tensor to_float32(const torch::Tensor& t);

// Writes tensors (BF16, F16 or F32; moved to the CPU and made contiguous) with optional string
// metadata, atomically. Names must be unique and non-empty.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sparseplan
