// Tensor shapes in error messages, "[2, 128, 3, 64]", built without std::ostream (see
// runtime/torch_ops.cpp and DEVELOPERS.md: stream formatting of integers crashed in modules
// Python loads).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace sparseplan {

inline std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace sparseplan
