#include "io/capture_file.h"

#include <hdf5.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/checked_math.h"
#include "base/temporary_file.h"
#include "plan/limits.h"
#include "plan/tile_geometry.h"

// The sanitizers' death callback, present only in sanitizer builds (weak, so Release links
// without it).
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace sparseplan {
namespace {

// ---- HDF5 plumbing -------------------------------------------------------------------------

// HDF5 prints its error stack to stderr by default; our errors carry their own message. The
// setting belongs to the calling thread's error stack (thread-safe libhdf5), so every entry
// point calls this: worker threads read heads too.
void silence_hdf5() {
  thread_local const bool done = [] {
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

// Variable-length strings, the memory type for reading format-1 files.
Handle vlen_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}

// Format 2 stores every string with a fixed length (NUL-padded UTF-8) inside its attribute or
// dataset, never in the global heap: a corrupt heap makes libhdf5 loop forever.
Handle fixed_string_type(size_t size) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, std::max<size_t>(1, size));
  H5Tset_strpad(t, H5T_STR_NULLPAD);
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
  Handle type = fixed_string_type(value.size());
  Handle space = scalar_space();
  Handle attr(ctx.check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        std::string("cannot create attribute ") + name),
              H5Aclose);
  std::string padded = value;
  padded.resize(std::max<size_t>(1, value.size()), '\0');
  ctx.ok(H5Awrite(attr.get(), type.get(), padded.data()),
         std::string("cannot write attribute ") + name);
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

// The bytes of a fixed-length string up to its padding; a NUL inside the text is refused (the
// writer never stores one, and C readers would cut the string there).
std::string unpad_fixed_string(const H5Context& ctx, const std::string& what, std::string raw) {
  const size_t end = raw.find('\0');
  if (end == std::string::npos) return raw;
  if (raw.find_first_not_of('\0', end) != std::string::npos)
    ctx.fail(what + " contains a NUL byte inside the text");
  raw.resize(end);
  return raw;
}

// Reads a scalar string attribute. Variable-length strings are read only when `allow_vlen`
// (format 1, inside the child process of read_format1_strings): they live in the global heap.
std::string read_string_attr(const H5Context& ctx, hid_t obj, const std::string& where,
                             const char* name, bool allow_vlen = false) {
  const std::string what = "attribute " + where + name;
  Handle attr = open_attr(ctx, obj, where, name);
  Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING) ctx.fail(what + " is not a string");
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) ctx.fail(what + " is not a single string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    if (!allow_vlen)
      ctx.fail(what + " is a variable-length string; format " + kCaptureFormat +
               " stores fixed-length strings");
    Handle mtype = vlen_string_type();
    char* ptr = nullptr;
    ctx.ok(H5Aread(attr.get(), mtype.get(), &ptr), "cannot read " + what);
    std::string out = ptr ? ptr : "";
    H5free_memory(ptr);
    return out;
  }
  const size_t size = H5Tget_size(ftype.get());
  if (size == 0) ctx.fail(what + " has an invalid string size");
  std::string out(size, '\0');
  // The file's type with NUL padding: HDF5 does not convert between ASCII and UTF-8.
  Handle mtype(H5Tcopy(ftype.get()), H5Tclose);
  H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD);
  ctx.ok(H5Aread(attr.get(), mtype.get(), out.data()), "cannot read " + what);
  return unpad_fixed_string(ctx, what, std::move(out));
}

// Integer values of an attribute or dataset of any integer type, exactly: the type's class is
// checked (a float 1.5 is refused, not rounded) and unsigned 64-bit values above INT64_MAX are
// refused, not clamped.
std::vector<int64_t> read_integers(const H5Context& ctx, const std::string& what, hid_t ftype,
                                   size_t n, const std::function<herr_t(hid_t, void*)>& read) {
  const H5T_class_t cls = H5Tget_class(ftype);
  if (cls != H5T_INTEGER)
    ctx.fail(what + " must hold integers, but holds " +
             (cls == H5T_FLOAT ? std::string("floating-point numbers") : std::string("non-numbers")));
  std::vector<int64_t> out(n);
  if (n == 0) return out;
  if (H5Tget_sign(ftype) == H5T_SGN_NONE && H5Tget_size(ftype) >= 8) {
    std::vector<uint64_t> wide(n);
    ctx.ok(read(H5T_NATIVE_UINT64, wide.data()), "cannot read " + what);
    for (size_t i = 0; i < n; ++i) {
      if (wide[i] > uint64_t(std::numeric_limits<int64_t>::max()))
        ctx.fail(what + " holds " + std::to_string(wide[i]) + ", beyond 64-bit signed range");
      out[i] = int64_t(wide[i]);
    }
    return out;
  }
  ctx.ok(read(H5T_NATIVE_INT64, out.data()), "cannot read " + what);
  return out;
}

std::vector<int64_t> read_int_attr_values(const H5Context& ctx, hid_t obj,
                                          const std::string& where, const char* name,
                                          size_t expected) {
  const std::string what = "attribute " + where + name;
  Handle attr = open_attr(ctx, obj, where, name);
  Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != hssize_t(expected))
    ctx.fail(what + " has " + std::to_string(n) + " values, expected " + std::to_string(expected));
  return read_integers(ctx, what, ftype.get(), expected, [&](hid_t mtype, void* out) {
    return H5Aread(attr.get(), mtype, out);
  });
}

// A count or size stored as int64 and used as int: refused, naming the attribute, when it does
// not fit (a 2^32 + 1 must not read as 1).
int narrow(const H5Context& ctx, const std::string& what, int64_t value) {
  if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max())
    ctx.fail(what + " is " + std::to_string(value) + ", beyond the 32-bit range this reader uses");
  return int(value);
}

int read_int_attr(const H5Context& ctx, hid_t obj, const std::string& where, const char* name) {
  return narrow(ctx, "attribute " + where + name,
                read_int_attr_values(ctx, obj, where, name, 1)[0]);
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

// Opens a 1-d dataset of `expected` elements that the writer stores whole and uncompressed, and
// checks that the file holds its bytes: a shape alone (an unwritten dataset is just a shape) must
// not make the reader allocate what the file does not contain.
Handle open_whole_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                          size_t expected) {
  Handle dset = open_dataset(ctx, file, name);
  expect_dims(ctx, dset.get(), name, {hsize_t(expected)});
  Handle ftype(H5Dget_type(dset.get()), H5Tclose);
  // A corrupt datatype message reads as size 0 (found by fuzz_capture: a division by zero here).
  const size_t element = H5Tget_size(ftype.get());
  if (element == 0) ctx.fail("dataset /" + name + " has an unreadable element type");
  const hsize_t stored = H5Dget_storage_size(dset.get());
  if (expected > 0 && stored / element < expected)
    ctx.fail("dataset /" + name + " holds " + std::to_string(stored) + " bytes, too few for its " +
             std::to_string(expected) + " values");
  return dset;
}

std::vector<int64_t> read_int_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                                      size_t expected) {
  Handle dset = open_whole_dataset(ctx, file, name, expected);
  Handle ftype(H5Dget_type(dset.get()), H5Tclose);
  return read_integers(ctx, "dataset /" + name, ftype.get(), expected, [&](hid_t mtype, void* out) {
    return H5Dread(dset.get(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  });
}

// The values of an integer dataset used as int32, each checked to fit.
std::vector<int32_t> read_int32_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                                        size_t expected) {
  const std::vector<int64_t> wide = read_int_dataset(ctx, file, name, expected);
  std::vector<int32_t> out(wide.size());
  for (size_t i = 0; i < wide.size(); ++i)
    out[i] = narrow(ctx, "dataset /" + name + "[" + std::to_string(i) + "]", wide[i]);
  return out;
}

std::vector<double> read_double_dataset(const H5Context& ctx, hid_t file, const std::string& name,
                                        size_t expected) {
  Handle dset = open_whole_dataset(ctx, file, name, expected);
  Handle ftype(H5Dget_type(dset.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_FLOAT)
    ctx.fail("dataset /" + name + " must hold floating-point numbers");
  std::vector<double> out(expected);
  if (expected > 0)
    ctx.ok(H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
           "cannot read dataset /" + name);
  return out;
}

// Checks the chunk records that a read of the hyperslab [start, start+count) will follow. A
// corrupt chunk index can record a chunk shorter than the chunk, or past the end of the file;
// libhdf5 1.10 then copies the missing bytes from whatever lies past its buffer and the read
// succeeds with garbage (found by fuzz_capture). Unfiltered chunks must be whole; any chunk must
// lie inside the file. A finished capture has written every chunk (the writer refuses to finish
// otherwise), so a chunk without an address is refused too: reading it would copy the fill value,
// whose size a corrupt file can also misstate (libhdf5 1.10 then reads past that buffer).
void check_chunk_records(const H5Context& ctx, hid_t file, hid_t dset, const std::string& name,
                         const std::vector<hsize_t>& start, const std::vector<hsize_t>& count) {
  Handle dcpl(ctx.check(H5Dget_create_plist(dset), "cannot read the layout of /" + name),
              H5Pclose);
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return;
  const size_t rank = start.size();
  std::vector<hsize_t> chunk(rank);
  if (H5Pget_chunk(dcpl.get(), int(rank), chunk.data()) != int(rank))
    ctx.fail("dataset /" + name + " has an unreadable chunk shape");
  const bool filtered = H5Pget_nfilters(dcpl.get()) > 0;
  Handle ftype(H5Dget_type(dset), H5Tclose);
  hsize_t whole = H5Tget_size(ftype.get());
  for (hsize_t c : chunk) {
    if (c == 0) ctx.fail("dataset /" + name + " has an unreadable chunk shape");
    whole *= c;
  }
  hsize_t file_size = 0;
  ctx.ok(H5Fget_filesize(file, &file_size), "cannot read the size of the file");

  std::vector<hsize_t> first(rank), last(rank), at(rank);
  for (size_t d = 0; d < rank; ++d) {
    if (count[d] == 0) return;
    first[d] = start[d] / chunk[d];
    last[d] = (start[d] + count[d] - 1) / chunk[d];
  }
  at = first;
  for (;;) {
    std::vector<hsize_t> offset(rank);
    for (size_t d = 0; d < rank; ++d) offset[d] = at[d] * chunk[d];
    unsigned filter_mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    ctx.ok(H5Dget_chunk_info_by_coord(dset, offset.data(), &filter_mask, &addr, &size),
           "cannot look up a chunk of /" + name + " at " + dims_text(offset));
    if (addr == HADDR_UNDEF)
      ctx.fail("dataset /" + name + ": the chunk at " + dims_text(offset) + " was never written");
    if ((!filtered && size != whole) || size == 0 || addr > file_size || size > file_size - addr)
      ctx.fail("dataset /" + name + ": the chunk at " + dims_text(offset) + " is recorded as " +
               std::to_string(size) + " bytes at byte " + std::to_string(addr) + " of a " +
               std::to_string(file_size) + "-byte file" +
               (filtered ? std::string() : ", but a chunk holds " + std::to_string(whole)));
    size_t d = rank;
    while (d > 0 && at[d - 1] == last[d - 1]) {
      at[d - 1] = first[d - 1];
      --d;
    }
    if (d == 0) return;
    ++at[d - 1];
  }
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
  size_t width = 1;
  for (const std::string& v : values) width = std::max(width, v.size());
  Handle type = fixed_string_type(width);
  Handle space = simple_space({hsize_t(values.size())});
  Handle dset(ctx.check(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                   H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create dataset /" + name),
              H5Dclose);
  std::string packed(values.size() * width, '\0');
  for (size_t i = 0; i < values.size(); ++i) packed.replace(i * width, values[i].size(), values[i]);
  if (!values.empty())
    ctx.ok(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()),
           "cannot write dataset /" + name);
}

// A 1-d dataset of strings. Variable-length ones only when `allow_vlen` (format 1, in the child
// process of read_format1_strings); `expected` < 0 takes whatever length the dataset has.
std::vector<std::string> read_string_dataset(const H5Context& ctx, hid_t file,
                                             const std::string& name, int64_t expected,
                                             bool allow_vlen = false) {
  const std::string what = "dataset /" + name;
  Handle dset = open_dataset(ctx, file, name);
  const std::vector<hsize_t> dims = dataset_dims(ctx, dset.get(), name);
  if (dims.size() != 1) ctx.fail(what + " must be a list of strings, has shape " + dims_text(dims));
  if (expected >= 0) expect_dims(ctx, dset.get(), name, {hsize_t(expected)});
  const size_t n = size_t(dims[0]);
  Handle ftype(H5Dget_type(dset.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING) ctx.fail(what + " is not a list of strings");
  std::vector<std::string> out;
  if (H5Tis_variable_str(ftype.get()) > 0) {
    if (!allow_vlen)
      ctx.fail(what + " holds variable-length strings; format " + kCaptureFormat +
               " stores fixed-length strings");
    if (n > (size_t(1) << 24)) ctx.fail(what + " lists " + std::to_string(n) + " strings");
    Handle type = vlen_string_type();
    std::vector<char*> ptrs(n, nullptr);
    if (n > 0)
      ctx.ok(H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
             "cannot read " + what);
    for (char* p : ptrs) {
      out.emplace_back(p ? p : "");
      H5free_memory(p);
    }
    return out;
  }
  const size_t width = H5Tget_size(ftype.get());
  if (width == 0) ctx.fail(what + " has an invalid string size");
  open_whole_dataset(ctx, file, name, n);
  std::string packed(n * width, '\0');
  Handle mtype(H5Tcopy(ftype.get()), H5Tclose);
  H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD);
  if (n > 0)
    ctx.ok(H5Dread(dset.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()),
           "cannot read " + what);
  for (size_t i = 0; i < n; ++i)
    out.push_back(unpad_fixed_string(ctx, what + "[" + std::to_string(i) + "]",
                                     packed.substr(i * width, width)));
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

}  // namespace

void validate_capture_info(const CaptureInfo& info) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("capture: " + what); };
  auto text = [&](const std::string& value, const std::string& field) {
    if (value.find('\0') != std::string::npos) bad(field + " contains a NUL byte");
  };
  text(info.model.id, "model_id");
  text(info.tool_version, "tool_version");
  for (size_t p = 0; p < info.prompts.size(); ++p)
    text(info.prompts[p], "prompts[" + std::to_string(p) + "]");
  if (info.model.layers <= 0) bad("model.layers must be positive");
  if (info.model.heads <= 0) bad("model.heads must be positive");
  if (info.model.head_dim <= 0) bad("model.head_dim must be positive");
  check_model_shape(info.model.layers, info.model.heads, info.model.head_dim, "model.");
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
  for (size_t s = 0; s < info.timesteps.size(); ++s)
    if (std::isinf(info.timesteps[s]))
      bad("timesteps[" + std::to_string(s) + "] is infinite (NaN means unknown)");
  if (info.tiles.empty()) bad("tiles: at least one tile shape is needed");
  std::set<std::array<int, 3>> seen;
  for (const auto& tile : info.tiles) {
    // Geometry within the shared limits (plan/limits.h), and one head's mass over all samples
    // small enough to read at once, as search and analyze do.
    const TileGeometry g = make_tile_geometry(info.grid, tile, info.block_size, info.text);
    if (!seen.insert(tile).second) bad("tiles: " + tile_name(tile) + " listed twice");
    check_mass_size(int64_t(info.num_prompts) * int64_t(info.steps.size()), g.total_blocks,
                    "tiles: " + tile_name(tile) + ": block mass of one head");
  }
  if (info.branch != 0 && info.branch != 1) bad("branch must be 0 or 1");
  if (!nlohmann::json::accept(info.model_config_json))
    bad("model_config (model_config_json) is not valid JSON");
  if (!nlohmann::json::accept(info.sampler_json)) bad("sampler (sampler_json) is not valid JSON");
}

std::string block_mass_problem(const float* mass, int nb, const std::vector<int32_t>& block_valid) {
  for (int i = 0; i < nb; ++i) {
    const float* row = mass + size_t(i) * size_t(nb);
    double sum = 0.0;
    for (int j = 0; j < nb; ++j) {
      const float v = row[j];
      const bool finite = std::isfinite(v);
      if (finite && v >= 0 && (v == 0 || block_valid[size_t(j)] > 0)) {
        sum += v;
        continue;
      }
      const std::string at = "query block " + std::to_string(i) + ", key block " +
                             std::to_string(j) + ": " + std::to_string(v);
      if (!finite) return at + " is not finite";
      if (v < 0) return at + " is negative";
      return at + " on a key block without tokens (expected 0)";
    }
    if (block_valid[size_t(i)] > 0) {
      if (std::abs(sum - 1.0) > kBlockMassRowTolerance)
        return "query block " + std::to_string(i) + ": row sums to " + std::to_string(sum) +
               ", expected 1";
    } else if (sum != 0) {
      return "query block " + std::to_string(i) + " has no tokens but its row sums to " +
             std::to_string(sum) + ", expected 0";
    }
  }
  return "";
}

namespace {

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

void validate_options(const CaptureWriter::Options& options) {
  if (options.compression < 0 || options.compression > 9)
    throw std::invalid_argument("capture: compression must be 0-9");
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

namespace {

// Format 1 kept its strings (the root string attributes and /prompts) as variable-length
// strings in the HDF5 global heap, and libhdf5 loops forever on a heap whose objects are
// zeroed. They are read in a child process that is killed when it does not answer in time;
// readers open captures before they start threads that use HDF5 (a thread inside libhdf5
// while forking would leave its lock held in the child, which then times out too).
constexpr const char* kFormat1StringAttributes[] = {"format",       "tool_version", "model_id",
                                                    "model_config", "sampler",      "text_position"};
constexpr int kFormat1TimeoutSeconds = 5;

struct Format1Strings {
  std::map<std::string, std::string> attributes;
  std::vector<std::string> prompts;
};

void put_string(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}

bool get_string(const std::string& in, size_t& pos, std::string& s) {
  uint64_t n = 0;
  if (in.size() - pos < sizeof n) return false;
  std::memcpy(&n, in.data() + pos, sizeof n);
  pos += sizeof n;
  if (in.size() - pos < n) return false;
  s = in.substr(pos, size_t(n));
  pos += size_t(n);
  return true;
}

// A fault of libhdf5 inside the child must end the child and reach the parent as an exception.
// The child inherits the handlers of the process that forked it: under libFuzzer, the death
// callback the sanitizers run after a report (a heap overflow, a failed allocation) and the
// fuzzer's own abort and illegal-instruction handlers would report the child's fault as a crash
// of the input under test and write a crash artifact, while the parent goes on and refuses the
// file. The sanitizer's report itself stays on stderr.
void let_child_faults_end_only_the_child() {
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(nullptr);
  for (int sig : {SIGABRT, SIGILL}) ::signal(sig, SIG_DFL);
}

[[noreturn]] void answer_and_exit(int fd, const std::string& message) {
  size_t done = 0;
  while (done < message.size()) {
    const ssize_t n = ::write(fd, message.data() + done, message.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += size_t(n);
  }
  ::_exit(0);
}

Format1Strings read_format1_strings(const H5Context& ctx) {
  int fds[2];
  if (::pipe(fds) != 0) ctx.fail(std::string("cannot create a pipe: ") + std::strerror(errno));
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    ctx.fail(std::string("cannot fork to read format-1 strings: ") + std::strerror(errno));
  }
  if (child == 0) {
    let_child_faults_end_only_the_child();
    ::close(fds[0]);
    std::string out;
    try {
      silence_hdf5();
      Handle file(H5Fopen(ctx.path().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
      if (!file.valid()) ctx.fail("cannot open as HDF5 (corrupt or truncated file)");
      out = "ok";
      for (const char* name : kFormat1StringAttributes)
        put_string(out, read_string_attr(ctx, file.get(), "/", name, true));
      const std::vector<std::string> prompts =
          read_string_dataset(ctx, file.get(), "prompts", -1, true);
      put_string(out, std::to_string(prompts.size()));
      for (const std::string& p : prompts) put_string(out, p);
    } catch (const std::exception& e) {
      out = "er";
      put_string(out, e.what());
    } catch (...) {
      out = "er";
      put_string(out, ctx.path() + ": cannot read the format-1 strings");
    }
    answer_and_exit(fds[1], out);
  }
  ::close(fds[1]);
  std::string answer;
  bool timed_out = false;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(kFormat1TimeoutSeconds);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = ::poll(&pfd, 1, int(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline check above ends the wait
    char buffer[65536];
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buffer, size_t(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    ctx.fail("format-1 capture: its strings (root attributes and /prompts, kept in the HDF5 "
             "global heap) did not read within " + std::to_string(kFormat1TimeoutSeconds) +
             " s; the global heap is corrupt");
  size_t pos = 2;
  std::string message;
  if (answer.compare(0, 2, "er") == 0 && get_string(answer, pos, message))
    throw std::runtime_error(message);
  Format1Strings strings;
  bool whole = answer.compare(0, 2, "ok") == 0;
  for (const char* name : kFormat1StringAttributes)
    whole = whole && get_string(answer, pos, strings.attributes[name]);
  std::string count;
  whole = whole && get_string(answer, pos, count);
  const size_t n = whole ? size_t(std::stoull(count)) : 0;
  for (size_t i = 0; whole && i < n; ++i) {
    strings.prompts.emplace_back();
    whole = get_string(answer, pos, strings.prompts.back());
  }
  if (!whole || pos != answer.size())
    ctx.fail("format-1 capture: reading its strings failed (the reading process " +
             (WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                  : "exited with status " + std::to_string(WEXITSTATUS(status))) +
             ")");
  return strings;
}

}  // namespace

struct CaptureReader::Impl {
  H5Context ctx;
  Handle file;
  CaptureInfo info;
  std::vector<std::vector<int32_t>> block_valid;  // per tile, checked against the geometry
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
    silence_hdf5();
    Handle dset = open_dataset(ctx, file.get(), name);
    std::vector<hsize_t> dims = {P(), S(), L(), H()};
    dims.insert(dims.end(), tail.begin(), tail.end());
    expect_dims(ctx, dset.get(), name, dims);
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[2] = hsize_t(slot);
    start[3] = hsize_t(head);
    count[2] = count[3] = 1;
    int64_t total = 1;
    for (hsize_t c : count) total = checked_mul(total, int64_t(c), ctx.path() + ": /" + name + " per head");
    std::vector<float> out(static_cast<size_t>(total));
    if (total > 0) {
      check_chunk_records(ctx, file.get(), dset.get(), name, start, count);
      read_slab(ctx, dset.get(), name, start, count, out.data());
    }
    return out;
  }

  // "prompt p, step index s" of sample p*S + s, for messages.
  std::string sample_text(size_t sample, int layer, int head) const {
    return "prompt " + std::to_string(sample / S()) + ", step index " +
           std::to_string(sample % S()) + ", layer " + std::to_string(layer) + ", head " +
           std::to_string(head);
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
  auto open_file = [&] {
    impl_->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!impl_->file.valid()) ctx.fail("cannot open as HDF5 (corrupt or truncated file)");
  };
  open_file();
  if (H5Aexists(impl_->file.get(), "format") <= 0)
    ctx.fail("not a sparseplan capture file (no 'format' attribute)");
  bool format1 = false;
  {
    Handle attr = open_attr(ctx, impl_->file.get(), "/", "format");
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    format1 = H5Tget_class(type.get()) == H5T_STRING && H5Tis_variable_str(type.get()) > 0;
  }
  Format1Strings old;
  if (format1) {
    impl_->file.reset();  // the child opens the file on its own
    old = read_format1_strings(ctx);
    open_file();
  }
  const hid_t f = impl_->file.get();
  auto string_attr = [&](const char* name) {
    return format1 ? old.attributes.at(name) : read_string_attr(ctx, f, "/", name);
  };
  const std::string format = string_attr("format");
  const std::string expected_format = format1 ? kCaptureFormatV1 : kCaptureFormat;
  if (format != expected_format)
    ctx.fail("attribute /format is '" + format + "', expected '" + expected_format + "'" +
             (format1 ? " (variable-length strings are format 1)" : ""));
  if (H5Aexists(f, "complete") <= 0 || read_int_attr(ctx, f, "/", "complete") != 1)
    ctx.fail("incomplete capture (the capture was interrupted before it finished)");

  CaptureInfo& info = impl_->info;
  info.path = path;
  info.tool_version = string_attr("tool_version");
  info.model.id = string_attr("model_id");
  info.model.layers = read_int_attr(ctx, f, "/", "layers");
  info.model.heads = read_int_attr(ctx, f, "/", "heads");
  info.model.head_dim = read_int_attr(ctx, f, "/", "head_dim");
  info.model_config_json = string_attr("model_config");
  info.sampler_json = string_attr("sampler");
  const std::vector<int64_t> grid = read_int_attr_values(ctx, f, "/", "grid", 3);
  info.grid = Grid{narrow(ctx, "attribute /grid[0]", grid[0]),
                   narrow(ctx, "attribute /grid[1]", grid[1]),
                   narrow(ctx, "attribute /grid[2]", grid[2])};
  info.text.position = parse_position(ctx, string_attr("text_position"));
  info.text.tokens = read_int_attr(ctx, f, "/", "text_tokens");
  info.block_size = read_int_attr(ctx, f, "/", "block_size");
  info.branch = read_int_attr(ctx, f, "/", "branch");
  info.num_prompts = read_int_attr(ctx, f, "/", "num_prompts");
  const int num_steps = read_int_attr(ctx, f, "/", "num_steps");
  const int num_layers = read_int_attr(ctx, f, "/", "num_captured_layers");
  const int num_tiles = read_int_attr(ctx, f, "/", "num_tiles");
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"layers", info.model.layers}, {"heads", info.model.heads},
        {"num_prompts", info.num_prompts}, {"num_steps", num_steps},
        {"num_captured_layers", num_layers}, {"num_tiles", num_tiles}})
    if (value <= 0) ctx.fail(std::string("attribute /") + name + " is " + std::to_string(value) +
                             ", must be positive");
  if (num_layers > info.model.layers)
    ctx.fail("attribute /num_captured_layers is " + std::to_string(num_layers) +
             ", more than layers " + std::to_string(info.model.layers));
  auto flag = [&](const char* name) {
    const int v = read_int_attr(ctx, f, "/", name);
    if (v != 0 && v != 1)
      ctx.fail(std::string("attribute /") + name + " is " + std::to_string(v) + ", must be 0 or 1");
    return v == 1;
  };
  info.has_lse_stats = flag("has_lse_stats");
  info.has_full_lse = flag("has_full_lse");

  if (format1) {
    info.prompts = old.prompts;
    if (info.prompts.size() != size_t(info.num_prompts))
      ctx.fail("dataset /prompts has " + std::to_string(info.prompts.size()) +
               " strings, expected num_prompts = " + std::to_string(info.num_prompts));
  } else {
    info.prompts = read_string_dataset(ctx, f, "prompts", info.num_prompts);
  }
  info.seeds = read_int_dataset(ctx, f, "seeds", size_t(info.num_prompts));
  const std::vector<int32_t> layers = read_int32_dataset(ctx, f, "captured_layers", size_t(num_layers));
  info.layers.assign(layers.begin(), layers.end());
  const std::vector<int32_t> steps = read_int32_dataset(ctx, f, "steps", size_t(num_steps));
  info.steps.assign(steps.begin(), steps.end());
  info.timesteps = read_double_dataset(ctx, f, "timesteps", size_t(num_steps));
  const std::vector<int64_t> tiles = read_int_attr_values(ctx, f, "/", "tiles", size_t(num_tiles) * 3);
  for (size_t i = 0; i < size_t(num_tiles); ++i) {
    std::array<int, 3> tile{};
    for (size_t k = 0; k < 3; ++k)
      tile[k] = narrow(ctx, "attribute /tiles[" + std::to_string(i) + "][" + std::to_string(k) + "]",
                       tiles[3 * i + k]);
    info.tiles.push_back(tile);
  }
  // The writer's own definition of a valid capture, so that what one writes the other reads.
  try {
    validate_capture_info(info);
  } catch (const std::invalid_argument& e) {
    ctx.fail(std::string("invalid metadata: ") + e.what());
  }

  for (const auto& tile : info.tiles) {
    const std::string group = tile_group(tile);
    const TileGeometry g = make_tile_geometry(info.grid, tile, info.block_size, info.text);
    if (g.padded_tokens() < g.sequence_tokens())
      ctx.fail("tile " + tile_name(tile) + ": the geometry gives " +
               std::to_string(g.padded_tokens()) + " slots for " +
               std::to_string(g.sequence_tokens()) + " tokens (size overflow)");
    const hsize_t nb = hsize_t(g.total_blocks);
    {
      Handle grp(ctx.check(H5Gopen2(f, group.c_str(), H5P_DEFAULT), "missing group /" + group),
                 H5Gclose);
      const std::vector<int64_t> stored = read_int_attr_values(ctx, grp.get(), "/" + group + "/", "tile", 3);
      if (stored != std::vector<int64_t>{tile[0], tile[1], tile[2]})
        ctx.fail("attribute /" + group + "/tile does not match the group's name");
      const int64_t blocks = read_int_attr_values(ctx, grp.get(), "/" + group + "/", "num_blocks", 1)[0];
      if (blocks != g.total_blocks)
        ctx.fail("attribute /" + group + "/num_blocks is " + std::to_string(blocks) + ", but the grid, tile and block size give " +
                 std::to_string(g.total_blocks));
    }
    // Read with a size check against the file's bytes first, so the token order computed below
    // for comparison is bounded by what the file holds.
    std::vector<int32_t> valid = read_int32_dataset(ctx, f, group + "/block_valid", size_t(nb));
    const std::vector<int32_t> slots =
        read_int32_dataset(ctx, f, group + "/token_of_slot", size_t(g.padded_tokens()));
    const TokenOrder order = make_token_order(g);
    for (size_t b = 0; b < valid.size(); ++b)
      if (valid[b] != order.block_valid[b])
        ctx.fail("dataset /" + group + "/block_valid[" + std::to_string(b) + "] is " +
                 std::to_string(valid[b]) + ", but the grid, tile and block size give " +
                 std::to_string(order.block_valid[b]));
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i] != order.token_of_slot[i])
        ctx.fail("dataset /" + group + "/token_of_slot[" + std::to_string(i) + "] is " +
                 std::to_string(slots[i]) + ", but the grid, tile and block size give " +
                 std::to_string(order.token_of_slot[i]));
    impl_->block_valid.push_back(std::move(valid));

    const std::vector<hsize_t> head_dims = {impl_->P(), impl_->S(), impl_->L(), impl_->H()};
    auto check_float = [&](const std::string& name, std::vector<hsize_t> tail) {
      Handle d = open_dataset(ctx, f, name);
      std::vector<hsize_t> dims = head_dims;
      dims.insert(dims.end(), tail.begin(), tail.end());
      expect_dims(ctx, d.get(), name, dims);
      Handle type(H5Dget_type(d.get()), H5Tclose);
      if (H5Tget_class(type.get()) != H5T_FLOAT)
        ctx.fail("dataset /" + name + " must hold floating-point numbers");
    };
    check_float(mass_name(tile), {nb, nb});
    if (info.has_lse_stats)
      for (const char* stat : {"mean", "min", "max"}) check_float(lse_stat_name(tile, stat), {nb});
  }
  if (info.has_full_lse) {
    Handle d = open_dataset(ctx, f, kFullLse);
    expect_dims(ctx, d.get(), kFullLse,
                {impl_->P(), impl_->S(), impl_->L(), impl_->H(),
                 hsize_t(info.grid.tokens() + info.text.tokens)});
    Handle type(H5Dget_type(d.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_FLOAT)
      ctx.fail(std::string("dataset /") + kFullLse + " must hold floating-point numbers");
  }
}

CaptureReader::~CaptureReader() = default;
CaptureReader::CaptureReader(CaptureReader&&) noexcept = default;
CaptureReader& CaptureReader::operator=(CaptureReader&&) noexcept = default;

const CaptureInfo& CaptureReader::info() const { return impl_->info; }

std::vector<float> CaptureReader::head_block_mass(const std::array<int, 3>& tile, int layer,
                                                  int head) const {
  const int t = tile_index_of(impl_->info, tile);
  const int slot = impl_->check_head(layer, head);
  const std::vector<int32_t>& valid = impl_->block_valid[size_t(t)];
  const int nb = int(valid.size());
  std::vector<float> mass = impl_->read_head(mass_name(tile), slot, head, {hsize_t(nb), hsize_t(nb)});
  const size_t per_sample = size_t(nb) * size_t(nb);
  for (size_t sample = 0; sample * per_sample < mass.size(); ++sample) {
    const std::string problem = block_mass_problem(&mass[sample * per_sample], nb, valid);
    if (!problem.empty())
      impl_->ctx.fail("dataset /" + mass_name(tile) + ", " + impl_->sample_text(sample, layer, head) +
                      ": " + problem);
  }
  return mass;
}

LseStats CaptureReader::head_lse_stats(const std::array<int, 3>& tile, int layer,
                                       int head) const {
  const int t = tile_index_of(impl_->info, tile);
  const int slot = impl_->check_head(layer, head);
  if (!impl_->info.has_lse_stats) impl_->ctx.fail("capture has no LSE statistics");
  const std::vector<int32_t>& valid = impl_->block_valid[size_t(t)];
  const size_t nb = valid.size();
  LseStats stats;
  const char* names[3] = {"mean", "min", "max"};
  std::vector<float>* out[3] = {&stats.mean, &stats.min, &stats.max};
  for (int i = 0; i < 3; ++i) {
    const std::string name = lse_stat_name(tile, names[i]);
    *out[i] = impl_->read_head(name, slot, head, {hsize_t(nb)});
    // A block with tokens has a finite LSE; one without has none (-inf).
    for (size_t k = 0; k < out[i]->size(); ++k) {
      const float v = (*out[i])[k];
      const bool ok = valid[k % nb] > 0 ? std::isfinite(v) : v == -std::numeric_limits<float>::infinity();
      if (!ok)
        impl_->ctx.fail("dataset /" + name + ", " + impl_->sample_text(k / nb, layer, head) +
                        ", query block " + std::to_string(k % nb) + ": " + std::to_string(v) +
                        (valid[k % nb] > 0 ? " is not finite" : " on a block without tokens (expected -inf)"));
    }
  }
  return stats;
}

std::vector<int32_t> CaptureReader::block_valid(const std::array<int, 3>& tile) const {
  return impl_->block_valid[size_t(tile_index_of(impl_->info, tile))];
}

std::vector<float> CaptureReader::head_full_lse(int layer, int head) const {
  const int slot = impl_->check_head(layer, head);
  if (!impl_->info.has_full_lse)
    impl_->ctx.fail("capture has no full LSE (capture with --full-lse)");
  const size_t n = size_t(impl_->info.grid.tokens() + impl_->info.text.tokens);
  std::vector<float> lse = impl_->read_head(kFullLse, slot, head, {hsize_t(n)});
  for (size_t k = 0; k < lse.size(); ++k)
    if (!std::isfinite(lse[k]))
      impl_->ctx.fail(std::string("dataset /") + kFullLse + ", " +
                      impl_->sample_text(k / n, layer, head) + ", token " + std::to_string(k % n) +
                      ": " + std::to_string(lse[k]) + " is not finite");
  return lse;
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
  TemporaryFile tmp;  // removed on an exception, a dropped writer, SIGINT or SIGTERM
  std::string tmp_path;
  H5Context ctx;
  Options options;
  CaptureInfo info;
  Handle file;
  std::vector<int> num_blocks;                     // per tile
  std::vector<std::vector<int32_t>> block_valid;   // per tile
  std::vector<Handle> mass;                        // per tile
  std::vector<std::array<Handle, 3>> lse_stats;    // per tile: mean, min, max
  Handle full_lse;
  std::vector<std::vector<uint8_t>> mass_written;  // per tile, [P*S*L*H]
  std::vector<std::vector<uint8_t>> stats_written;
  std::vector<uint8_t> full_lse_written;
  bool finished = false;

  Impl(const std::string& p, const Options& o)
      : path(p), tmp(p), tmp_path(tmp.path()), ctx(p), options(o) {}

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
    : impl_((validate_capture_info(info_in), validate_options(options),
             std::make_unique<Impl>(path, options))) {
  silence_hdf5();
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

  // The 1.8 object header format keeps attributes too large for the header (a long
  // model_config) in dense storage instead of refusing them.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  w.file = Handle(H5Fcreate(w.tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
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
      w.block_valid.push_back(order.block_valid);
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
    throw;
  }
}

CaptureWriter::~CaptureWriter() {
  if (impl_) impl_->close_all();  // before the temporary file goes
}

const CaptureInfo& CaptureWriter::info() const { return impl_->info; }
bool CaptureWriter::finished() const { return impl_->finished; }

void CaptureWriter::write_head_mass(const std::array<int, 3>& tile, int p, int s, int layer,
                                    int head, const float* mass) {
  silence_hdf5();
  Impl& w = *impl_;
  w.check_open();
  const int t = tile_index_of(w.info, tile);
  const int slot = check_index(w.info, p, s, layer, head);
  const hsize_t nb = hsize_t(w.num_blocks[size_t(t)]);
  // Refused here rather than by every reader later: the reader applies the same check.
  const std::string problem = block_mass_problem(mass, int(nb), w.block_valid[size_t(t)]);
  if (!problem.empty())
    throw std::invalid_argument("capture " + w.path + ": block mass of tile " + tile_name(tile) +
                                ", prompt " + std::to_string(p) + ", step index " +
                                std::to_string(s) + ", layer " + std::to_string(layer) +
                                ", head " + std::to_string(head) + ": " + problem);
  write_slab(H5Context(w.tmp_path), w.mass[size_t(t)].get(), mass_name(tile),
             w.head_start(p, s, slot, head, 2), {1, 1, 1, 1, nb, nb}, mass);
  w.mass_written[size_t(t)][w.flat(p, s, slot, head)] = 1;
}

void CaptureWriter::write_lse_stats(const std::array<int, 3>& tile, int p, int s, int layer,
                                    int head, const float* mean, const float* min,
                                    const float* max) {
  silence_hdf5();
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
  silence_hdf5();
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
  silence_hdf5();
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
  w.finished = true;
  w.tmp.commit();
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
