// libFuzzer harness for the capture reader: the input is an HDF5 capture file. It must be
// refused with an exception or open, and then everything the reader offers must read for every
// tile, the first and last captured layer and the first and last head; a crash, a sanitizer
// report or a hang is a bug.
#include <array>
#include <cstdint>
#include <exception>
#include <vector>

#include "fuzz/input_file.h"
#include "io/capture_file.h"

// A corrupt object header makes libhdf5 itself ask malloc for its size (36 and 64 GB were seen)
// before any check of ours runs. In a Release build glibc's malloc returns NULL for a request
// beyond the machine's memory and swap (Linux's default overcommit heuristic), libhdf5 reports
// an error and the reader turns it into its own. Here ASan returns NULL too, instead of
// aborting, for every request over 1 GB: below libFuzzer's -malloc_limit_mb (its -rss_limit_mb,
// 2048 by default), which would otherwise report the request as an out-of-memory crash. A C++
// `new` of that size, ours, still fails the run: ASan reports a failed operator new whatever
// this option says. Flags named in ASAN_OPTIONS override these.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}

// libhdf5 1.10.8 leaks a 56-byte block when an allocation fails while it opens a file
// (corpus/capture/capture-hdf5-alloc-64gb.h5): a fault of libhdf5 on a path only a corrupt file
// takes. The suppression hides no leak of ours: an HDF5 handle we fail to close stays reachable
// from libhdf5's identifier tables, so a leak LSan finds inside libhdf5 is libhdf5's own.
extern "C" const char* __lsan_default_suppressions() { return "leak:libhdf5\n"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparseplan;
  const std::string& path = fuzz::input_path(".h5");
  fuzz::write_input(path, data, size);
  try {
    const CaptureReader reader(path);
    const CaptureInfo& info = reader.info();
    const std::vector<int> layers = {info.layers.front(), info.layers.back()};
    const std::vector<int> heads = {0, info.model.heads - 1};
    for (const std::array<int, 3>& tile : info.tiles) {
      reader.block_valid(tile);
      for (int layer : layers)
        for (int head : heads) {
          reader.head_block_mass(tile, layer, head);
          if (info.has_lse_stats) reader.head_lse_stats(tile, layer, head);
        }
    }
    if (info.has_full_lse)
      for (int layer : layers)
        for (int head : heads) reader.head_full_lse(layer, head);
  } catch (const std::exception&) {
  }
  return 0;
}
