// Relative L2 error of one tensor against another, in float64 on the CPU, for tests that
// compare whole tensors (either may live on the GPU).
#pragma once

#include <torch/types.h>

inline double relative_l2(const torch::Tensor& got, const torch::Tensor& want) {
  const torch::Tensor g = got.cpu().to(torch::kFloat64), w = want.cpu().to(torch::kFloat64);
  return (g - w).norm().item<double>() / w.norm().item<double>();
}
