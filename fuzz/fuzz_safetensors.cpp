// libFuzzer harness for the safetensors reader: the input is a .safetensors file. It must be
// refused with an exception or open, and then every tensor it lists must load (and convert to
// float32 when it is a float type); a crash, a sanitizer report or a hang is a bug.
#include <cstdint>
#include <exception>

#include "fuzz/input_file.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparseplan;
  const std::string& path = fuzz::input_path(".safetensors");
  fuzz::write_input(path, data, size);
  try {
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
    for (const std::string& name : checkpoint.names()) {
      const torch::Tensor t = checkpoint.load(name);
      if (t.is_floating_point()) to_float32(t);
    }
  } catch (const std::exception&) {
  }
  return 0;
}
