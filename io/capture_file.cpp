#include "io/capture_file.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "plan/tile_geometry.h"

namespace sparseplan {
namespace {

// ---- HDF5 plumbing -------------------------------------------------------------------------

// HDF5 prints its error stack to stderr by default; our errors carry their own message.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Owns one HDF5 identifier and closes it with the matching function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, -1);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Every HDF5 failure becomes a runtime_error naming the file and what was being done.
class H5Context {
 public:
  explicit H5Context(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(path_ + ": " + what);
  }
  hid_t check(hid_t id, const std::string& what) const {
    if (id < 0) fail(what);
    return id;
  }
  void ok(herr_t status, const std::string& what) const {
    if (status < 0) fail(what);
  }

 private:
  std::string path_;
};

Handle string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}

Handle scalar_space() { return Handle(H5Screate(H5S_SCALAR), H5Sclose); }

Handle simple_space(const std::vector<hsize_t>& dims) {
  return Handle(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
}

bool link_exists(hid_t loc, const std::string& name) {
  // H5Lexists fails on a path whose intermediate group is missing; check each component.
  std::string prefix;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t slash = name.find('/', start);
    const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos
                                                                            : slash - start);
    prefix += (prefix.empty() ? "" : "/") + part;
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

void write_string_attr(const H5Context& ctx, hid_t obj, const char* name,
                       const std::string& value) {
  Handle type = string_type();
  Handle space = scalar_space();
  Handle attr(ctx.check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        std::string("cannot create attribute ") + name),
              H5Aclose);
  const char* ptr = value.c_str();
  ctx.ok(H5Awrite(attr.get(), type.get(), &ptr), std::string("cannot write attribute ") + name);
}

template <typename T>
hid_t native_type();
template <>
hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <>
hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <>
hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <>
hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

template <typename T>
void write_array_attr(const H5Context& ctx, hid_t obj, const char* name,
                      const std::vector<T>& values) {
  Handle space = values.size() == 1 ? scalar_space() : simple_space({hsize_t(values.size())});
  Handle attr(ctx.check(H5Acreate2(obj, name, native_type<T>(), space.get(), H5P_DEFAULT,
                                   H5P_DEFAULT),
                        std::string("cannot create attribute ") + name),
              H5Aclose);
  ctx.ok(H5Awrite(attr.get(), native_type<T>(), values.data()),
         std::string("cannot write attribute ") + name);
}

Handle open_attr(const H5Context& ctx, hid_t obj, const std::string& where, const char* name) {
  if (H5Aexists(obj, name) <= 0) ctx.fail("missing attribute " + where + name);
  return Handle(ctx.check(H5Aopen(obj, name, H5P_DEFAULT),
                          "cannot open attribute " + where + name),
                H5Aclose);
}

std::string read_string_attr(const H5Context& ctx, hid_t obj, const std::string& where,
                             const char* name) {
  Handle attr = open_attr(ctx, obj, where, name);
  Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING)
    ctx.fail("attribute " + where + name + " is not a string");
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    ctx.fail("attribute " + where + name + " is not a single string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle mtype = string_type();
    char* ptr = nullptr;
    ctx.ok(H5Aread(attr.get(), mtype.get(), &ptr), "cannot read attribute " + where + name);
    std::string out = ptr ? ptr : "";
    H5free_memory(ptr);
    return out;
  }
  const size_t size = H5Tget_size(ftype.get());
  std::string out(size, '\0');
  Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mtype.get(), size);
  ctx.ok(H5Aread(attr.get(), mtype.get(), out.data()), "cannot read attribute " + where + name);
  out.resize(std::strlen(out.c_str()));
  return out;
}

template <typename T>
std::vector<T> read_array_attr(const H5Context& ctx, hid_t obj, const std::string& where,
                               const char* name, size_t expected) {
  Handle attr = open_attr(ctx, obj, where, name);
  Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(ftype.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    ctx.fail("attribute " + where + name + " is not numeric");
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != hssize_t(expected))
    ctx.fail("attribute " + where + name + " has " + std::to_string(n) + " values, expected " +
             std::to_string(expected));
  std::vector<T> out(expected);
  ctx.ok(H5Aread(attr.get(), native_type<T>(), out.data()), "cannot read attribute " + where + name);
  return out;
}

int read_int_attr(const H5Context& ctx, hid_t obj, const std::string& where, const char* name) {
  return int(read_array_attr<int64_t>(ctx, obj, where, name, 1)[0]);
}

Handle open_dataset(const H5Context& ctx, hid_t file, const std::string& name) {
  if (!link_exists(file, name)) ctx.fail("missing dataset /" + name);
  return Handle(ctx.check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "cannot open dataset /" + name),
                H5Dclose);
}

std::vector<hsize_t> dataset_dims(const H5Context& ctx, hid_t dset, const std::string& name) {
  Handle space(ctx.check(H5Dget_space(dset), "cannot read the shape of /" + name), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) ctx.fail("cannot read the shape of /" + name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

void expect_dims(const H5Context& ctx, hid_t dset, const std::string& name,
                 const std::vector<hsize_t>& expected) {
  const std::vector<hsize_t> dims = dataset_dims(ctx, dset, name);
  if (dims != expected)
    ctx.fail("dataset /" + name + " has shape " + dims_text(dims) + ", expected " +
             dims_text(expected));
}

template <typename T>
std::vector<T> read_whole_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                                  size_t expected) {
  Handle dset = open_dataset(ctx, file, name);
  expect_dims(ctx, dset.get(), name, {hsize_t(expected)});
  std::vector<T> out(expected);
  if (expected > 0)
    ctx.ok(H5Dread(dset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
           "cannot read dataset /" + name);
  return out;
}

// Reads the hyperslab [start, start+count) of an N-d dataset into a contiguous buffer.
template <typename T>
void read_slab(const H5Context& ctx, hid_t dset, const std::string& name,
               const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, T* out) {
  Handle fspace(ctx.check(H5Dget_space(dset), "cannot read the shape of /" + name), H5Sclose);
  ctx.ok(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                             nullptr),
         "bad selection in /" + name);
  Handle mspace = simple_space(count);
  ctx.ok(H5Dread(dset, native_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, out),
         "cannot read /" + name + " (file truncated or corrupt?)");
}

template <typename T>
void write_slab(const H5Context& ctx, hid_t dset, const std::string& name,
                const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                const T* data) {
  Handle fspace(ctx.check(H5Dget_space(dset), "cannot read the shape of /" + name), H5Sclose);
  ctx.ok(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                             nullptr),
         "bad selection in /" + name);
  Handle mspace = simple_space(count);
  ctx.ok(H5Dwrite(dset, native_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, data),
         "cannot write /" + name);
}

// Chunked float32 dataset filled with NaN, so a part never written is visible as such.
Handle create_float_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                            const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                            int compression) {
  Handle space = simple_space(dims);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  ctx.ok(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), "cannot chunk /" + name);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  H5Pset_fill_value(dcpl.get(), H5T_NATIVE_FLOAT, &nan);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_IFSET);
  if (compression > 0) {
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), unsigned(compression));
  }
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return Handle(ctx.check(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl.get(),
                                     dcpl.get(), H5P_DEFAULT),
                          "cannot create dataset /" + name),
                H5Dclose);
}

template <typename T>
void write_whole_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                         hid_t file_type, const std::vector<T>& values) {
  Handle space = simple_space({hsize_t(values.size())});
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Handle dset(ctx.check(H5Dcreate2(file, name.c_str(), file_type, space.get(), lcpl.get(),
                                   H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create dataset /" + name),
              H5Dclose);
  if (!values.empty())
    ctx.ok(H5Dwrite(dset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
           "cannot write dataset /" + name);
}

void write_string_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                          const std::vector<std::string>& values) {
  Handle type = string_type();
  Handle space = simple_space({hsize_t(values.size())});
  Handle dset(ctx.check(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                   H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create dataset /" + name),
              H5Dclose);
  std::vector<const char*> ptrs;
  for (const std::string& v : values) ptrs.push_back(v.c_str());
  if (!ptrs.empty())
    ctx.ok(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
           "cannot write dataset /" + name);
}

std::vector<std::string> read_string_dataset(const H5Context& ctx, hid_t file,
                                             const std::string& name, size_t expected) {
  Handle dset = open_dataset(ctx, file, name);
  expect_dims(ctx, dset.get(), name, {hsize_t(expected)});
  Handle ftype(H5Dget_type(dset.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) <= 0)
    ctx.fail("dataset /" + name + " is not a list of variable-length strings");
  Handle type = string_type();
  std::vector<char*> ptrs(expected, nullptr);
  if (expected > 0)
    ctx.ok(H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
           "cannot read dataset /" + name);
  std::vector<std::string> out;
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

// ---- Layout names --------------------------------------------------------------------------

std::string tile_group(const std::array<int, 3>& tile) { return "tiles/" + tile_name(tile); }
std::string mass_name(const std::array<int, 3>& tile) { return tile_group(tile) + "/block_mass"; }
std::string lse_stat_name(const std::array<int, 3>& tile, const char* stat) {
  return tile_group(tile) + "/lse_" + stat;
}
constexpr const char* kFullLse = "lse";

const char* position_text(TextPosition p) {
  switch (p) {
    case TextPosition::None: return "none";
    case TextPosition::Before: return "before";
    case TextPosition::After: return "after";
  }
  return "none";
}

TextPosition parse_position(const H5Context& ctx, const std::string& s) {
  if (s == "none") return TextPosition::None;
  if (s == "before") return TextPosition::Before;
  if (s == "after") return TextPosition::After;
  ctx.fail("attribute text_position is '" + s + "', expected none, before or after");
}

void validate_info(const CaptureInfo& info) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("capture: " + what); };
  if (info.model.layers <= 0) bad("model.layers must be positive");
  if (info.model.heads <= 0) bad("model.heads must be positive");
  if (info.model.head_dim <= 0) bad("model.head_dim must be positive");
  if (info.tiles.empty()) bad("tiles: at least one tile shape is needed");
  std::set<std::array<int, 3>> seen;
  for (const auto& tile : info.tiles) {
    make_tile_geometry(info.grid, tile, info.block_size, info.text);  // throws naming the field
    if (!seen.insert(tile).second) bad("tiles: " + tile_name(tile) + " listed twice");
  }
  for (size_t i = 0; i < info.layers.size(); ++i) {
    if (info.layers[i] < 0 || info.layers[i] >= info.model.layers)
      bad("layers: layer " + std::to_string(info.layers[i]) + " out of range [0, " +
          std::to_string(info.model.layers) + ")");
    if (i > 0 && info.layers[i] <= info.layers[i - 1]) bad("layers: must be strictly increasing");
  }
  if (info.num_prompts <= 0) bad("num_prompts must be positive");
  if (int(info.prompts.size()) != info.num_prompts)
    bad("prompts: " + std::to_string(info.prompts.size()) + " given for num_prompts " +
        std::to_string(info.num_prompts));
  if (int(info.seeds.size()) != info.num_prompts)
    bad("seeds: " + std::to_string(info.seeds.size()) + " given for num_prompts " +
        std::to_string(info.num_prompts));
  if (info.steps.empty()) bad("steps: at least one captured step is needed");
  for (size_t i = 0; i < info.steps.size(); ++i) {
    if (info.steps[i] < 0) bad("steps: negative step " + std::to_string(info.steps[i]));
    if (i > 0 && info.steps[i] <= info.steps[i - 1]) bad("steps: must be strictly increasing");
  }
  if (!info.timesteps.empty() && info.timesteps.size() != info.steps.size())
    bad("timesteps: " + std::to_string(info.timesteps.size()) + " given for " +
        std::to_string(info.steps.size()) + " steps");
  if (info.branch != 0 && info.branch != 1) bad("branch must be 0 or 1");
  for (const auto* json : {&info.model_config_json, &info.sampler_json})
    if (!nlohmann::json::accept(*json)) bad("model_config_json/sampler_json must be valid JSON");
}

// Position of a model layer among the captured layers.
int layer_slot(const CaptureInfo& info, int layer) {
  const auto it = std::lower_bound(info.layers.begin(), info.layers.end(), layer);
  if (it == info.layers.end() || *it != layer) {
    if (layer < 0 || layer >= info.model.layers)
      throw std::invalid_argument("capture" + (info.path.empty() ? "" : " " + info.path) +
                                  ": layer " + std::to_string(layer) + " out of range [0, " +
                                  std::to_string(info.model.layers) + ")");
    throw std::invalid_argument("capture" + (info.path.empty() ? "" : " " + info.path) +
                                ": layer " + std::to_string(layer) + " was not captured");
  }
  return int(it - info.layers.begin());
}

// Checks the indices and returns the layer's slot.
int check_index(const CaptureInfo& info, int p, int s, int layer, int head) {
  auto range = [](const char* what, int v, int n) {
    if (v < 0 || v >= n)
      throw std::invalid_argument(std::string("capture: ") + what + " " + std::to_string(v) +
                                  " out of range [0, " + std::to_string(n) + ")");
  };
  range("prompt", p, info.num_prompts);
  range("step index", s, int(info.steps.size()));
  range("head", head, info.model.heads);
  return layer_slot(info, layer);
}

int tile_index_of(const CaptureInfo& info, const std::array<int, 3>& tile) {
  for (size_t i = 0; i < info.tiles.size(); ++i)
    if (info.tiles[i] == tile) return int(i);
  std::string have;
  for (const auto& t : info.tiles) have += (have.empty() ? "" : ", ") + tile_name(t);
  throw std::invalid_argument("capture" + (info.path.empty() ? "" : " " + info.path) +
                              ": no tile shape " + tile_name(tile) + " (has " + have + ")");
}

}  // namespace

// ---- Shared helpers ------------------------------------------------------------------------

std::string tile_name(const std::array<int, 3>& tile) {
  return std::to_string(tile[0]) + "x" + std::to_string(tile[1]) + "x" + std::to_string(tile[2]);
}

std::array<int, 3> parse_tile_name(const std::string& name) {
  std::array<int, 3> tile{};
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    size_t used = 0;
    int v = 0;
    try {
      if (pos >= name.size() || !std::isdigit(static_cast<unsigned char>(name[pos])))
        throw std::invalid_argument("");
      v = std::stoi(name.substr(pos), &used);
    } catch (const std::exception&) {
      throw std::invalid_argument("tile '" + name + "': expected TFxTHxTW, e.g. 4x4x4");
    }
    if (v <= 0) throw std::invalid_argument("tile '" + name + "': sizes must be positive");
    tile[size_t(i)] = v;
    pos += used;
    if (i < 2) {
      if (pos >= name.size() || name[pos] != 'x')
        throw std::invalid_argument("tile '" + name + "': expected TFxTHxTW, e.g. 4x4x4");
      ++pos;
    }
  }
  if (pos != name.size())
    throw std::invalid_argument("tile '" + name + "': expected TFxTHxTW, e.g. 4x4x4");
  return tile;
}

int capture_num_blocks(const CaptureInfo& info, const std::array<int, 3>& tile) {
  return make_tile_geometry(info.grid, tile, info.block_size, info.text).total_blocks;
}

// ---- Reader --------------------------------------------------------------------------------

struct CaptureReader::Impl {
  H5Context ctx;
  Handle file;
  CaptureInfo info;
  explicit Impl(const std::string& path) : ctx(path) {}

  hsize_t P() const { return hsize_t(info.num_prompts); }
  hsize_t S() const { return hsize_t(info.steps.size()); }
  hsize_t L() const { return hsize_t(info.layers.size()); }
  hsize_t H() const { return hsize_t(info.model.heads); }

  // Returns the layer's slot among the captured layers.
  int check_head(int layer, int head) const {
    if (head < 0 || head >= info.model.heads)
      throw std::invalid_argument(ctx.path() + ": head " + std::to_string(head) +
                                  " out of range [0, " + std::to_string(info.model.heads) + ")");
    return layer_slot(info, layer);
  }

  // [P*S][per_head] for the dataset [P, S, L, H, ...] restricted to (layer, head).
  std::vector<float> read_head(const std::string& name, int slot, int head,
                               const std::vector<hsize_t>& tail) const {
    Handle dset = open_dataset(ctx, file.get(), name);
    std::vector<hsize_t> dims = {P(), S(), L(), H()};
    dims.insert(dims.end(), tail.begin(), tail.end());
    expect_dims(ctx, dset.get(), name, dims);
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[2] = hsize_t(slot);
    start[3] = hsize_t(head);
    count[2] = count[3] = 1;
    size_t total = 1;
    for (hsize_t c : count) total *= size_t(c);
    std::vector<float> out(total);
    if (total > 0) read_slab(ctx, dset.get(), name, start, count, out.data());
    return out;
  }
};

CaptureReader::CaptureReader(const std::string& path) : impl_(std::make_unique<Impl>(path)) {
  silence_hdf5();
  const H5Context& ctx = impl_->ctx;
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) ctx.fail("cannot open capture file (missing or unreadable)");
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) ctx.fail("not an HDF5 file (or truncated)");
  impl_->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!impl_->file.valid()) ctx.fail("cannot open as HDF5 (corrupt or truncated file)");
  const hid_t f = impl_->file.get();

  if (H5Aexists(f, "format") <= 0)
    ctx.fail("not a sparseplan capture file (no 'format' attribute)");
  const std::string format = read_string_attr(ctx, f, "/", "format");
  if (format != kCaptureFormat)
    ctx.fail("format is '" + format + "', expected '" + kCaptureFormat + "'");
  if (H5Aexists(f, "complete") <= 0 || read_int_attr(ctx, f, "/", "complete") != 1)
    ctx.fail("incomplete capture (the capture was interrupted before it finished)");

  CaptureInfo& info = impl_->info;
  info.path = path;
  info.tool_version = read_string_attr(ctx, f, "/", "tool_version");
  info.model.id = read_string_attr(ctx, f, "/", "model_id");
  info.model.layers = read_int_attr(ctx, f, "/", "layers");
  info.model.heads = read_int_attr(ctx, f, "/", "heads");
  info.model.head_dim = read_int_attr(ctx, f, "/", "head_dim");
  info.model_config_json = read_string_attr(ctx, f, "/", "model_config");
  info.sampler_json = read_string_attr(ctx, f, "/", "sampler");
  const auto grid = read_array_attr<int64_t>(ctx, f, "/", "grid", 3);
  info.grid = Grid{int(grid[0]), int(grid[1]), int(grid[2])};
  info.text.position = parse_position(ctx, read_string_attr(ctx, f, "/", "text_position"));
  info.text.tokens = read_int_attr(ctx, f, "/", "text_tokens");
  info.block_size = read_int_attr(ctx, f, "/", "block_size");
  info.branch = read_int_attr(ctx, f, "/", "branch");
  info.num_prompts = read_int_attr(ctx, f, "/", "num_prompts");
  const int num_steps = read_int_attr(ctx, f, "/", "num_steps");
  const int num_tiles = read_int_attr(ctx, f, "/", "num_tiles");
  if (info.model.layers <= 0 || info.model.heads <= 0 || info.num_prompts <= 0 ||
      num_steps <= 0 || num_tiles <= 0)
    ctx.fail("layers, heads, num_prompts, num_steps and num_tiles must be positive");

  info.prompts = read_string_dataset(ctx, f, "prompts", size_t(info.num_prompts));
  info.seeds = read_whole_dataset<int64_t>(ctx, f, "seeds", size_t(info.num_prompts));
  const int num_layers = read_int_attr(ctx, f, "/", "num_captured_layers");
  if (num_layers <= 0 || num_layers > info.model.layers)
    ctx.fail("num_captured_layers must be in [1, layers]");
  const auto layers = read_whole_dataset<int32_t>(ctx, f, "captured_layers", size_t(num_layers));
  info.layers.assign(layers.begin(), layers.end());
  for (size_t i = 0; i < info.layers.size(); ++i)
    if (info.layers[i] < 0 || info.layers[i] >= info.model.layers ||
        (i > 0 && info.layers[i] <= info.layers[i - 1]))
      ctx.fail("captured_layers must be strictly increasing layer numbers below layers");
  const auto steps = read_whole_dataset<int32_t>(ctx, f, "steps", size_t(num_steps));
  info.steps.assign(steps.begin(), steps.end());
  info.timesteps = read_whole_dataset<double>(ctx, f, "timesteps", size_t(num_steps));

  const auto tiles_flat = read_array_attr<int64_t>(ctx, f, "/", "tiles", size_t(num_tiles) * 3);
  for (int i = 0; i < num_tiles; ++i)
    info.tiles.push_back({int(tiles_flat[size_t(3 * i)]), int(tiles_flat[size_t(3 * i + 1)]),
                          int(tiles_flat[size_t(3 * i + 2)])});
  try {
    for (const auto& tile : info.tiles) make_tile_geometry(info.grid, tile, info.block_size, info.text);
  } catch (const std::invalid_argument& e) {
    ctx.fail(std::string("inconsistent metadata: ") + e.what());
  }

  info.has_lse_stats = read_int_attr(ctx, f, "/", "has_lse_stats") != 0;
  info.has_full_lse = read_int_attr(ctx, f, "/", "has_full_lse") != 0;
  for (const auto& tile : info.tiles) {
    const hsize_t nb = hsize_t(capture_num_blocks(info, tile));
    const std::vector<hsize_t> head_dims = {impl_->P(), impl_->S(), impl_->L(), impl_->H()};
    auto with = [&](std::vector<hsize_t> tail) {
      std::vector<hsize_t> d = head_dims;
      d.insert(d.end(), tail.begin(), tail.end());
      return d;
    };
    Handle mass = open_dataset(ctx, f, mass_name(tile));
    expect_dims(ctx, mass.get(), mass_name(tile), with({nb, nb}));
    Handle valid = open_dataset(ctx, f, tile_group(tile) + "/block_valid");
    expect_dims(ctx, valid.get(), tile_group(tile) + "/block_valid", {nb});
    if (info.has_lse_stats)
      for (const char* stat : {"mean", "min", "max"}) {
        Handle d = open_dataset(ctx, f, lse_stat_name(tile, stat));
        expect_dims(ctx, d.get(), lse_stat_name(tile, stat), with({nb}));
      }
  }
  if (info.has_full_lse) {
    Handle d = open_dataset(ctx, f, kFullLse);
    expect_dims(ctx, d.get(), kFullLse,
                {impl_->P(), impl_->S(), impl_->L(), impl_->H(),
                 hsize_t(info.grid.tokens() + info.text.tokens)});
  }
}

CaptureReader::~CaptureReader() = default;
CaptureReader::CaptureReader(CaptureReader&&) noexcept = default;
CaptureReader& CaptureReader::operator=(CaptureReader&&) noexcept = default;

const CaptureInfo& CaptureReader::info() const { return impl_->info; }

std::vector<float> CaptureReader::head_block_mass(const std::array<int, 3>& tile, int layer,
                                                  int head) const {
  tile_index_of(impl_->info, tile);
  const int slot = impl_->check_head(layer, head);
  const hsize_t nb = hsize_t(capture_num_blocks(impl_->info, tile));
  return impl_->read_head(mass_name(tile), slot, head, {nb, nb});
}

LseStats CaptureReader::head_lse_stats(const std::array<int, 3>& tile, int layer,
                                       int head) const {
  tile_index_of(impl_->info, tile);
  const int slot = impl_->check_head(layer, head);
  if (!impl_->info.has_lse_stats) impl_->ctx.fail("capture has no LSE statistics");
  const hsize_t nb = hsize_t(capture_num_blocks(impl_->info, tile));
  LseStats stats;
  stats.mean = impl_->read_head(lse_stat_name(tile, "mean"), slot, head, {nb});
  stats.min = impl_->read_head(lse_stat_name(tile, "min"), slot, head, {nb});
  stats.max = impl_->read_head(lse_stat_name(tile, "max"), slot, head, {nb});
  return stats;
}

std::vector<int32_t> CaptureReader::block_valid(const std::array<int, 3>& tile) const {
  tile_index_of(impl_->info, tile);
  return read_whole_dataset<int32_t>(impl_->ctx, impl_->file.get(),
                                     tile_group(tile) + "/block_valid",
                                     size_t(capture_num_blocks(impl_->info, tile)));
}

std::vector<float> CaptureReader::head_full_lse(int layer, int head) const {
  const int slot = impl_->check_head(layer, head);
  if (!impl_->info.has_full_lse)
    impl_->ctx.fail("capture has no full LSE (capture with --full-lse)");
  return impl_->read_head(kFullLse, slot, head,
                          {hsize_t(impl_->info.grid.tokens() + impl_->info.text.tokens)});
}

CaptureInfo read_capture_info(const std::string& path) { return CaptureReader(path).info(); }

std::vector<float> read_head_block_mass(const std::string& path, const std::array<int, 3>& tile,
                                        int layer, int head) {
  return CaptureReader(path).head_block_mass(tile, layer, head);
}

LseStats read_head_lse_stats(const std::string& path, const std::array<int, 3>& tile, int layer,
                             int head) {
  return CaptureReader(path).head_lse_stats(tile, layer, head);
}

std::vector<int32_t> read_block_valid(const std::string& path, const std::array<int, 3>& tile) {
  return CaptureReader(path).block_valid(tile);
}

// ---- Writer --------------------------------------------------------------------------------

struct CaptureWriter::Impl {
  std::string path;
  std::string tmp_path;
  H5Context ctx;
  Options options;
  CaptureInfo info;
  Handle file;
  std::vector<int> num_blocks;                     // per tile
  std::vector<Handle> mass;                        // per tile
  std::vector<std::array<Handle, 3>> lse_stats;    // per tile: mean, min, max
  Handle full_lse;
  std::vector<std::vector<uint8_t>> mass_written;  // per tile, [P*S*L*H]
  std::vector<std::vector<uint8_t>> stats_written;
  std::vector<uint8_t> full_lse_written;
  bool finished = false;

  Impl(const std::string& p, const Options& o)
      : path(p), tmp_path(p + ".tmp-" + std::to_string(::getpid())), ctx(p), options(o) {}

  size_t flat(int p, int s, int slot, int head) const {
    return ((size_t(p) * info.steps.size() + size_t(s)) * info.layers.size() + size_t(slot)) *
               size_t(info.model.heads) +
           size_t(head);
  }
  std::vector<hsize_t> head_start(int p, int s, int slot, int head, size_t tail) const {
    std::vector<hsize_t> start = {hsize_t(p), hsize_t(s), hsize_t(slot), hsize_t(head)};
    start.resize(4 + tail, 0);
    return start;
  }
  std::vector<hsize_t> head_dims(std::vector<hsize_t> tail) const {
    std::vector<hsize_t> d = {hsize_t(info.num_prompts), hsize_t(info.steps.size()),
                              hsize_t(info.layers.size()), hsize_t(info.model.heads)};
    d.insert(d.end(), tail.begin(), tail.end());
    return d;
  }
  void check_open() const {
    if (finished) throw std::logic_error("capture " + path + ": already finished");
  }
  void close_all() {
    mass.clear();
    lse_stats.clear();
    full_lse.reset();
    file.reset();
  }
};

CaptureWriter::CaptureWriter(const std::string& path, const CaptureInfo& info)
    : CaptureWriter(path, info, Options{}) {}

CaptureWriter::CaptureWriter(const std::string& path, const CaptureInfo& info_in,
                             const Options& options)
    : impl_(std::make_unique<Impl>(path, options)) {
  silence_hdf5();
  validate_info(info_in);
  if (options.compression < 0 || options.compression > 9)
    throw std::invalid_argument("capture: compression must be 0-9");
  Impl& w = *impl_;
  w.info = info_in;
  w.info.path = path;
  if (w.info.tool_version.empty()) w.info.tool_version = std::string("sparseplan ") + SPARSEPLAN_VERSION;
  if (w.info.layers.empty())
    for (int l = 0; l < w.info.model.layers; ++l) w.info.layers.push_back(l);
  if (w.info.timesteps.empty())
    w.info.timesteps.assign(w.info.steps.size(), std::numeric_limits<double>::quiet_NaN());
  w.info.has_lse_stats = options.lse_stats;
  w.info.has_full_lse = options.full_lse;
  const H5Context tmp_ctx(w.tmp_path);

  w.file = Handle(H5Fcreate(w.tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                  H5Fclose);
  if (!w.file.valid()) tmp_ctx.fail("cannot create (directory missing or not writable?)");
  try {
    const hid_t f = w.file.get();
    const CaptureInfo& in = w.info;
    write_string_attr(tmp_ctx, f, "format", kCaptureFormat);
    write_string_attr(tmp_ctx, f, "tool_version", in.tool_version);
    write_string_attr(tmp_ctx, f, "model_id", in.model.id);
    write_array_attr<int64_t>(tmp_ctx, f, "layers", {in.model.layers});
    write_array_attr<int64_t>(tmp_ctx, f, "heads", {in.model.heads});
    write_array_attr<int64_t>(tmp_ctx, f, "head_dim", {in.model.head_dim});
    write_string_attr(tmp_ctx, f, "model_config", in.model_config_json);
    write_string_attr(tmp_ctx, f, "sampler", in.sampler_json);
    write_array_attr<int64_t>(tmp_ctx, f, "grid", {in.grid.frames, in.grid.height, in.grid.width});
    write_string_attr(tmp_ctx, f, "text_position", position_text(in.text.position));
    write_array_attr<int64_t>(tmp_ctx, f, "text_tokens", {in.text.tokens});
    write_array_attr<int64_t>(tmp_ctx, f, "block_size", {in.block_size});
    write_array_attr<int64_t>(tmp_ctx, f, "branch", {in.branch});
    write_array_attr<int64_t>(tmp_ctx, f, "num_prompts", {in.num_prompts});
    write_array_attr<int64_t>(tmp_ctx, f, "num_steps", {int64_t(in.steps.size())});
    write_array_attr<int64_t>(tmp_ctx, f, "num_captured_layers", {int64_t(in.layers.size())});
    write_array_attr<int64_t>(tmp_ctx, f, "num_tiles", {int64_t(in.tiles.size())});
    std::vector<int64_t> tiles_flat;
    for (const auto& t : in.tiles) tiles_flat.insert(tiles_flat.end(), t.begin(), t.end());
    {
      // A single tile would otherwise be written as a 3-vector, which is what we want anyway.
      Handle space = simple_space({hsize_t(in.tiles.size()), 3});
      Handle attr(tmp_ctx.check(H5Acreate2(f, "tiles", H5T_NATIVE_INT64, space.get(),
                                           H5P_DEFAULT, H5P_DEFAULT),
                                "cannot create attribute tiles"),
                  H5Aclose);
      tmp_ctx.ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, tiles_flat.data()),
                 "cannot write attribute tiles");
    }
    write_array_attr<int64_t>(tmp_ctx, f, "has_lse_stats", {options.lse_stats ? 1 : 0});
    write_array_attr<int64_t>(tmp_ctx, f, "has_full_lse", {options.full_lse ? 1 : 0});
    write_array_attr<int64_t>(tmp_ctx, f, "complete", {0});

    write_string_dataset(tmp_ctx, f, "prompts", in.prompts);
    write_whole_dataset<int64_t>(tmp_ctx, f, "seeds", H5T_STD_I64LE, in.seeds);
    write_whole_dataset<int32_t>(tmp_ctx, f, "steps", H5T_STD_I32LE,
                                 std::vector<int32_t>(in.steps.begin(), in.steps.end()));
    write_whole_dataset<int32_t>(tmp_ctx, f, "captured_layers", H5T_STD_I32LE,
                                 std::vector<int32_t>(in.layers.begin(), in.layers.end()));

    const size_t heads_total =
        size_t(in.num_samples()) * in.layers.size() * size_t(in.model.heads);
    for (const auto& tile : in.tiles) {
      const TileGeometry geometry = make_tile_geometry(in.grid, tile, in.block_size, in.text);
      const TokenOrder order = make_token_order(geometry);
      const hsize_t nb = hsize_t(geometry.total_blocks);
      w.num_blocks.push_back(geometry.total_blocks);
      write_whole_dataset<int32_t>(tmp_ctx, f, tile_group(tile) + "/block_valid", H5T_STD_I32LE,
                                   order.block_valid);
      write_whole_dataset<int32_t>(tmp_ctx, f, tile_group(tile) + "/token_of_slot",
                                   H5T_STD_I32LE, order.token_of_slot);
      {
        Handle group(H5Gopen2(f, tile_group(tile).c_str(), H5P_DEFAULT), H5Gclose);
        write_array_attr<int64_t>(tmp_ctx, group.get(), "tile", {tile[0], tile[1], tile[2]});
        write_array_attr<int64_t>(tmp_ctx, group.get(), "num_blocks", {geometry.total_blocks});
      }
      w.mass.push_back(create_float_dataset(tmp_ctx, f, mass_name(tile), w.head_dims({nb, nb}),
                                            {1, 1, 1, 1, nb, nb}, options.compression));
      w.mass_written.emplace_back(heads_total, 0);
      std::array<Handle, 3> stats;
      if (options.lse_stats) {
        const char* names[3] = {"mean", "min", "max"};
        for (int i = 0; i < 3; ++i)
          stats[size_t(i)] = create_float_dataset(tmp_ctx, f, lse_stat_name(tile, names[i]),
                                                  w.head_dims({nb}), {1, 1, 1, 1, nb}, 0);
        w.stats_written.emplace_back(heads_total, 0);
      }
      w.lse_stats.push_back(std::move(stats));
    }
    if (options.full_lse) {
      const hsize_t n = hsize_t(in.grid.tokens() + in.text.tokens);
      w.full_lse = create_float_dataset(tmp_ctx, f, kFullLse, w.head_dims({n}), {1, 1, 1, 1, n}, 0);
      w.full_lse_written.assign(heads_total, 0);
    }
  } catch (...) {
    w.close_all();
    std::remove(w.tmp_path.c_str());
    throw;
  }
}

CaptureWriter::~CaptureWriter() {
  if (impl_ && !impl_->finished) {
    impl_->close_all();
    std::remove(impl_->tmp_path.c_str());
  }
}

const CaptureInfo& CaptureWriter::info() const { return impl_->info; }
bool CaptureWriter::finished() const { return impl_->finished; }

void CaptureWriter::write_head_mass(const std::array<int, 3>& tile, int p, int s, int layer,
                                    int head, const float* mass) {
  Impl& w = *impl_;
  w.check_open();
  const int t = tile_index_of(w.info, tile);
  const int slot = check_index(w.info, p, s, layer, head);
  const hsize_t nb = hsize_t(w.num_blocks[size_t(t)]);
  write_slab(H5Context(w.tmp_path), w.mass[size_t(t)].get(), mass_name(tile),
             w.head_start(p, s, slot, head, 2), {1, 1, 1, 1, nb, nb}, mass);
  w.mass_written[size_t(t)][w.flat(p, s, slot, head)] = 1;
}

void CaptureWriter::write_lse_stats(const std::array<int, 3>& tile, int p, int s, int layer,
                                    int head, const float* mean, const float* min,
                                    const float* max) {
  Impl& w = *impl_;
  w.check_open();
  if (!w.options.lse_stats)
    throw std::logic_error("capture " + w.path + ": created without LSE statistics");
  const int t = tile_index_of(w.info, tile);
  const int slot = check_index(w.info, p, s, layer, head);
  const hsize_t nb = hsize_t(w.num_blocks[size_t(t)]);
  const float* data[3] = {mean, min, max};
  const char* names[3] = {"mean", "min", "max"};
  for (int i = 0; i < 3; ++i)
    write_slab(H5Context(w.tmp_path), w.lse_stats[size_t(t)][size_t(i)].get(),
               lse_stat_name(tile, names[i]), w.head_start(p, s, slot, head, 1),
               {1, 1, 1, 1, nb}, data[i]);
  w.stats_written[size_t(t)][w.flat(p, s, slot, head)] = 1;
}

void CaptureWriter::write_full_lse(int p, int s, int layer, int head, const float* lse) {
  Impl& w = *impl_;
  w.check_open();
  if (!w.options.full_lse)
    throw std::logic_error("capture " + w.path + ": created without the full LSE");
  const int slot = check_index(w.info, p, s, layer, head);
  const hsize_t n = hsize_t(w.info.grid.tokens() + w.info.text.tokens);
  write_slab(H5Context(w.tmp_path), w.full_lse.get(), kFullLse,
             w.head_start(p, s, slot, head, 1), {1, 1, 1, 1, n}, lse);
  w.full_lse_written[w.flat(p, s, slot, head)] = 1;
}

void CaptureWriter::set_timestep(int s, double timestep) {
  Impl& w = *impl_;
  w.check_open();
  if (s < 0 || s >= int(w.info.steps.size()))
    throw std::invalid_argument("capture: step index " + std::to_string(s) + " out of range");
  w.info.timesteps[size_t(s)] = timestep;
}

void CaptureWriter::finish() {
  Impl& w = *impl_;
  w.check_open();
  const CaptureInfo& in = w.info;
  auto first_missing = [&](const std::vector<uint8_t>& written, const std::string& what) {
    for (size_t i = 0; i < written.size(); ++i) {
      if (written[i]) continue;
      const size_t H = size_t(in.model.heads), L = in.layers.size(), S = in.steps.size();
      const size_t head = i % H, s = (i / H / L) % S, p = i / H / L / S;
      const int layer = in.layers[(i / H) % L];
      throw std::runtime_error("capture " + w.path + ": not finished: " + what + " of prompt " +
                               std::to_string(p) + ", step index " + std::to_string(s) +
                               ", layer " + std::to_string(layer) + ", head " +
                               std::to_string(head) + " was never written");
    }
  };
  for (size_t t = 0; t < in.tiles.size(); ++t) {
    first_missing(w.mass_written[t], "block mass (tile " + tile_name(in.tiles[t]) + ")");
    if (w.options.lse_stats)
      first_missing(w.stats_written[t], "LSE statistics (tile " + tile_name(in.tiles[t]) + ")");
  }
  if (w.options.full_lse) first_missing(w.full_lse_written, "full LSE");

  const H5Context tmp_ctx(w.tmp_path);
  const hid_t f = w.file.get();
  write_whole_dataset<double>(tmp_ctx, f, "timesteps", H5T_IEEE_F64LE, in.timesteps);
  {
    Handle attr(tmp_ctx.check(H5Aopen(f, "complete", H5P_DEFAULT), "cannot open attribute complete"),
                H5Aclose);
    const int64_t one = 1;
    tmp_ctx.ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, &one), "cannot write attribute complete");
  }
  tmp_ctx.ok(H5Fflush(f, H5F_SCOPE_GLOBAL), "cannot flush");
  w.close_all();
  if (std::rename(w.tmp_path.c_str(), w.path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(w.tmp_path.c_str());
    w.finished = true;
    throw std::runtime_error(w.path + ": cannot write (" + why + ")");
  }
  w.finished = true;
}

// ---- Merge ---------------------------------------------------------------------------------

void merge_captures(const std::vector<std::string>& inputs, const std::string& out) {
  if (inputs.empty()) throw std::invalid_argument("merge: no input captures");
  std::vector<CaptureReader> readers;
  for (const std::string& path : inputs) readers.emplace_back(path);
  const CaptureInfo& first = readers.front().info();
  CaptureInfo merged = first;
  merged.num_prompts = 0;
  merged.prompts.clear();
  merged.seeds.clear();
  merged.tool_version.clear();
  for (const CaptureReader& r : readers) {
    const CaptureInfo& in = r.info();
    auto mismatch = [&](const std::string& what) {
      throw std::invalid_argument("merge: " + in.path + " differs from " + first.path + " in " +
                                  what);
    };
    if (in.model.id != first.model.id || in.model.layers != first.model.layers ||
        in.model.heads != first.model.heads || in.model.head_dim != first.model.head_dim)
      mismatch("model");
    if (!(in.grid == first.grid)) mismatch("grid");
    if (in.text.position != first.text.position || in.text.tokens != first.text.tokens)
      mismatch("text layout");
    if (in.block_size != first.block_size) mismatch("block size");
    if (in.tiles != first.tiles) mismatch("tile shapes");
    if (in.steps != first.steps) mismatch("captured steps");
    if (in.layers != first.layers) mismatch("captured layers");
    for (size_t s = 0; s < in.steps.size(); ++s)
      if (!(std::abs(in.timesteps[s] - first.timesteps[s]) <= 1e-6 * (1 + std::abs(first.timesteps[s]))))
        mismatch("timesteps (sampler settings)");
    if (in.branch != first.branch) mismatch("branch");
    if (in.has_lse_stats != first.has_lse_stats) mismatch("LSE statistics");
    if (in.has_full_lse != first.has_full_lse) mismatch("full LSE");
    merged.num_prompts += in.num_prompts;
    merged.prompts.insert(merged.prompts.end(), in.prompts.begin(), in.prompts.end());
    merged.seeds.insert(merged.seeds.end(), in.seeds.begin(), in.seeds.end());
  }
  CaptureWriter::Options options;
  options.lse_stats = first.has_lse_stats;
  options.full_lse = first.has_full_lse;
  CaptureWriter writer(out, merged, options);
  const int S = int(first.steps.size());
  for (int layer : first.layers)
    for (int head = 0; head < first.model.heads; ++head) {
      for (const auto& tile : first.tiles) {
        const size_t nb = size_t(capture_num_blocks(first, tile));
        int p0 = 0;
        for (const CaptureReader& r : readers) {
          const std::vector<float> mass = r.head_block_mass(tile, layer, head);
          LseStats stats;
          if (first.has_lse_stats) stats = r.head_lse_stats(tile, layer, head);
          for (int p = 0; p < r.info().num_prompts; ++p)
            for (int s = 0; s < S; ++s) {
              const size_t sample = size_t(p * S + s);
              writer.write_head_mass(tile, p0 + p, s, layer, head, &mass[sample * nb * nb]);
              if (first.has_lse_stats)
                writer.write_lse_stats(tile, p0 + p, s, layer, head, &stats.mean[sample * nb],
                                       &stats.min[sample * nb], &stats.max[sample * nb]);
            }
          p0 += r.info().num_prompts;
        }
      }
      if (first.has_full_lse) {
        const size_t n = size_t(first.grid.tokens() + first.text.tokens);
        int p0 = 0;
        for (const CaptureReader& r : readers) {
          const std::vector<float> lse = r.head_full_lse(layer, head);
          for (int p = 0; p < r.info().num_prompts; ++p)
            for (int s = 0; s < S; ++s)
              writer.write_full_lse(p0 + p, s, layer, head, &lse[size_t(p * S + s) * n]);
          p0 += r.info().num_prompts;
        }
      }
    }
  for (int s = 0; s < S; ++s) writer.set_timestep(s, first.timesteps[size_t(s)]);
  writer.finish();
}

}  // namespace sparseplan
