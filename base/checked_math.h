// Overflow-checked 64-bit arithmetic for every count derived from untrusted sizes (grids,
// tiles, block sizes, tensor shapes). A wrapped product would allocate too little and then
// write past it, so these throw instead, naming what was being computed.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace sparseplan {

inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw std::invalid_argument(what + ": " + std::to_string(a) + " x " + std::to_string(b) +
                                " overflows 64 bits");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw std::invalid_argument(what + ": " + std::to_string(a) + " + " + std::to_string(b) +
                                " overflows 64 bits");
  return r;
}

// Narrows a count to int where the code stores it as int, refusing what does not fit.
inline int checked_int(int64_t v, const std::string& what) {
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw std::invalid_argument(what + ": " + std::to_string(v) + " does not fit in 32 bits");
  return int(v);
}

}  // namespace sparseplan
