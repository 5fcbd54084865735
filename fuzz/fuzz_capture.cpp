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
