#include "io/safetensors.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"

namespace sparseplan {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Headers of real checkpoints are a few MB at most; anything much larger is a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  const char* name;
  torch::ScalarType type;
  int bytes;
};

// I64 is read because known-answer files store token ids; the model weights are BF16/F16/F32.
const DTypeInfo kDTypes[] = {
    {"BF16", torch::kBFloat16, 2},
    {"F16", torch::kHalf, 2},
    {"F32", torch::kFloat32, 4},
    {"I64", torch::kInt64, 8},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DTypeInfo& dtype_of(torch::ScalarType type, const std::string& what) {
  for (const DTypeInfo& d : kDTypes)
    if (d.type == type) return d;
  throw std::invalid_argument(what + ": unsupported dtype " +
                              std::string(c10::toString(type)) +
                              " (supported: BF16, F16, F32, I64)");
}

[[noreturn]] void corrupt(const std::string& path, const std::string& why) {
  throw std::runtime_error(path + ": corrupt safetensors file: " + why);
}

// The absolute path with every link resolved. POSIX realpath rather than std::filesystem:
// pip's LibTorch exports an ABI-incompatible copy of parts of std::filesystem (DEVELOPERS.md).
std::string real_path(const std::string& path) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr)
    throw std::runtime_error(path + ": cannot resolve (" + std::strerror(errno) + ")");
  std::string out(resolved);
  std::free(resolved);
  return out;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& j,
                             uint64_t data_size) {
  const std::string where = "tensor '" + name + "': ";
  if (!j.is_object()) corrupt(path, where + "entry is not a JSON object");
  SafetensorsEntry e;
  e.name = name;
  if (!j.contains("dtype") || !j["dtype"].is_string()) corrupt(path, where + "missing dtype");
  e.dtype = j["dtype"].get<std::string>();
  const DTypeInfo* dtype = find_dtype(e.dtype);
  if (!dtype)
    throw std::runtime_error(path + ": tensor '" + name + "' has unsupported dtype " + e.dtype +
                             " (supported: BF16, F16, F32, I64)");
  if (!j.contains("shape") || !j["shape"].is_array()) corrupt(path, where + "missing shape");
  uint64_t numel = 1;
  for (const json& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      corrupt(path, where + "shape has a negative or non-integer dimension");
    const uint64_t n = d.get<uint64_t>();
    if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / n)
      corrupt(path, where + "shape is too large");
    numel *= n;
    e.shape.push_back(int64_t(n));
  }
  const json& off = j.contains("data_offsets") ? j["data_offsets"] : json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    corrupt(path, where + "data_offsets must be two non-negative integers");
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end) corrupt(path, where + "data_offsets begin after they end");
  if (e.end > data_size)
    corrupt(path, where + "data ends at byte " + std::to_string(e.end) +
                      " of the data section, but the file holds only " +
                      std::to_string(data_size) + " data bytes (truncated?)");
  if (e.end - e.begin != numel * dtype->bytes)
    corrupt(path, where + "data_offsets span " + std::to_string(e.end - e.begin) +
                      " bytes but dtype " + e.dtype + " and shape need " +
                      std::to_string(numel * dtype->bytes));
  return e;
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  if (!fs::is_regular_file(path_, ec))
    throw std::runtime_error(path_ + ": safetensors file not found");
  file_size_ = fs::file_size(path_, ec);
  if (ec) throw std::runtime_error(path_ + ": cannot read size (" + ec.message() + ")");
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw std::runtime_error(path_ + ": cannot open for reading");
  if (file_size_ < 8) corrupt(path_, "file is shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  if (!in) corrupt(path_, "cannot read the header length");
  const uint64_t header_len = read_u64_le(len_bytes);
  if (header_len < 2 || header_len > kMaxHeaderBytes)
    corrupt(path_, "header length " + std::to_string(header_len) + " is not plausible");
  if (header_len > file_size_ - 8)
    corrupt(path_, "header length " + std::to_string(header_len) + " runs past the end of the " +
                       std::to_string(file_size_) + "-byte file (truncated?)");
  std::string header(header_len, '\0');
  in.read(header.data(), std::streamsize(header_len));
  if (!in) corrupt(path_, "cannot read the header");
  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size_ - data_start_;

  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception& e) {
    corrupt(path_, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) corrupt(path_, "header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) corrupt(path_, "__metadata__ is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          corrupt(path_, "__metadata__ value '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (it.key().empty()) corrupt(path_, "a tensor has an empty name");
    entries_[it.key()] = parse_entry(path_, it.key(), it.value(), data_size);
  }

  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& [name, e] : entries_)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      corrupt(path_, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                         "' overlap");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw std::runtime_error(path_ + ": no tensor named '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::load(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DTypeInfo* dtype = find_dtype(e.dtype);
  torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(dtype->type));
  const uint64_t bytes = e.end - e.begin;
  if (bytes == 0) return t;
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw std::runtime_error(path_ + ": cannot open for reading tensor '" + name + "'");
  in.seekg(std::streamoff(data_start_ + e.begin));
  in.read(static_cast<char*>(t.data_ptr()), std::streamsize(bytes));
  if (!in || uint64_t(in.gcount()) != bytes)
    throw std::runtime_error(path_ + ": tensor '" + name +
                             "' could not be read completely (file truncated while reading?)");
  return t;
}

torch::Tensor SafetensorsFile::load_float32(const std::string& name) const {
  const std::string what = path_ + ": tensor '" + name + "'";
  const std::string& dtype = entry(name).dtype;
  if (dtype != "BF16" && dtype != "F16" && dtype != "F32")
    throw std::runtime_error(what + " has dtype " + dtype +
                             "; weights must be BF16, F16 or F32");
  torch::Tensor t = to_float32(load(name));
  if (torch::isfinite(t).all().item<bool>()) return t;
  const int64_t nan = torch::isnan(t).sum().item<int64_t>();
  const int64_t inf = torch::isinf(t).sum().item<int64_t>();
  const int64_t first = torch::logical_not(torch::isfinite(t)).flatten().nonzero()[0][0].item<int64_t>();
  throw std::runtime_error(what + " holds " + std::to_string(nan) + " NaN and " +
                           std::to_string(inf) + " infinite values among " +
                           std::to_string(t.numel()) + " (the first at flat index " +
                           std::to_string(first) + "): the checkpoint is corrupt");
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> indexes;
    for (const auto& de : fs::directory_iterator(path, ec)) {
      const std::string n = de.path().filename().string();
      const std::string suffix = ".safetensors.index.json";
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        indexes.push_back(de.path().string());
    }
    std::sort(indexes.begin(), indexes.end());
    const fs::path preferred = fs::path(path) / "diffusion_pytorch_model.safetensors.index.json";
    const fs::path single = fs::path(path) / "diffusion_pytorch_model.safetensors";
    if (fs::is_regular_file(preferred, ec)) {
      file = preferred.string();
    } else if (indexes.size() == 1) {
      file = indexes[0];
    } else if (indexes.size() > 1) {
      throw std::runtime_error(path + ": several *.safetensors.index.json files; name one");
    } else if (fs::is_regular_file(single, ec)) {
      file = single.string();
    } else {
      throw std::runtime_error(path +
                               ": no checkpoint found (expected "
                               "diffusion_pytorch_model.safetensors.index.json or "
                               "diffusion_pytorch_model.safetensors)");
    }
  } else if (!fs::exists(path, ec)) {
    throw std::runtime_error(path + ": checkpoint not found");
  }

  SafetensorsCheckpoint ckpt;
  ckpt.source_ = file;
  const std::string index_suffix = ".index.json";
  const bool is_index = file.size() > index_suffix.size() &&
                        file.compare(file.size() - index_suffix.size(), index_suffix.size(),
                                     index_suffix) == 0;
  if (!is_index) {
    ckpt.shards_.push_back(std::make_shared<SafetensorsFile>(file));
    for (const std::string& n : ckpt.shards_[0]->names()) ckpt.shard_of_[n] = 0;
    return ckpt;
  }

  json index;
  try {
    index = json::parse(read_text_file(file));
  } catch (const json::exception& e) {
    throw std::runtime_error(file + ": index is not valid JSON (" + e.what() + ")");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw std::runtime_error(file + ": index has no 'weight_map' object");
  const fs::path dir = fs::path(file).parent_path();
  // Shards must resolve (links followed) inside the folder the index itself resolves into: a
  // link or ".." cannot make the checkpoint read files elsewhere, while a Hugging Face cache
  // snapshot, whose index and shards all link into one blobs folder, still loads.
  const std::string real_dir = fs::path(real_path(file)).parent_path().string() + "/";
  std::map<std::string, size_t> shard_index;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw std::runtime_error(file + ": weight_map/" + it.key() + " is not a file name");
    const std::string shard_name = it.value().get<std::string>();
    if (shard_name.empty() || fs::path(shard_name).is_absolute() ||
        shard_name.find("..") != std::string::npos)
      throw std::runtime_error(file + ": weight_map/" + it.key() + ": bad shard name '" +
                               shard_name + "'");
    auto found = shard_index.find(shard_name);
    if (found == shard_index.end()) {
      const std::string shard_path = (dir / shard_name).string();
      if (!fs::is_regular_file(shard_path, ec))
        throw std::runtime_error(file + ": shard " + shard_name + " (holding '" + it.key() +
                                 "') is missing: " + shard_path);
      const std::string shard_real = real_path(shard_path);
      if (shard_real.compare(0, real_dir.size(), real_dir) != 0)
        throw std::runtime_error(file + ": weight_map/" + it.key() + ": shard " + shard_name +
                                 " resolves to " + shard_real + ", outside the model folder " +
                                 real_dir);
      ckpt.shards_.push_back(std::make_shared<SafetensorsFile>(shard_path));
      found = shard_index.emplace(shard_name, ckpt.shards_.size() - 1).first;
    }
    if (!ckpt.shards_[found->second]->contains(it.key()))
      throw std::runtime_error(file + ": tensor '" + it.key() + "' is listed in shard " +
                               shard_name + " but that shard does not hold it");
    ckpt.shard_of_[it.key()] = found->second;
  }
  if (ckpt.shard_of_.empty()) throw std::runtime_error(file + ": weight_map is empty");
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : shard_of_) out.push_back(kv.first);
  return out;
}

torch::Tensor SafetensorsCheckpoint::load(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    throw std::runtime_error(source_ + ": checkpoint has no tensor '" + name + "'");
  return shards_[it->second]->load(name);
}

torch::Tensor SafetensorsCheckpoint::load_float32(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    throw std::runtime_error(source_ + ": checkpoint has no tensor '" + name + "'");
  return shards_[it->second]->load_float32(name);
}

torch::Tensor to_float32(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  if (type != torch::kFloat32 && type != torch::kBFloat16 && type != torch::kHalf)
    throw std::invalid_argument(std::string("to_float32: expected BF16, F16 or F32, got ") +
                                c10::toString(type));
  return t.to(torch::kFloat32);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__")
      throw std::invalid_argument(path + ": bad tensor name '" + name + "'");
    if (header.contains(name))
      throw std::invalid_argument(path + ": tensor '" + name + "' given twice");
    const DTypeInfo& d = dtype_of(tensor.scalar_type(), path + ": tensor '" + name + "'");
    torch::Tensor c = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = uint64_t(c.numel()) * d.bytes;
    header[name] = {{"dtype", d.name},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(c);
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    unsigned char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const torch::Tensor& c : contiguous)
      out.write(static_cast<const char*>(c.data_ptr()), std::streamsize(c.nbytes()));
    out.flush();
    if (!out) throw std::runtime_error(path + ": write failed");
  });
}

}  // namespace sparseplan
