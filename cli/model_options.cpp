#include "cli/model_options.h"

namespace sparseplan::cli {

void add_sinusoid_option(CLI::App* sub, std::string* value) {
  sub->add_option("--sinusoid", *value,
                  "Precision of the timestep sinusoid: float64 (the official Wan2.1 code) or "
                  "float32 (diffusers' WanTransformer3DModel: use it to compare with a diffusers "
                  "pipeline)")
      ->check(CLI::IsMember({"float64", "float32"}))
      ->capture_default_str();
}

SinusoidPrecision sinusoid_precision(const std::string& value) {
  return value == "float32" ? SinusoidPrecision::kFloat32 : SinusoidPrecision::kFloat64;
}

}  // namespace sparseplan::cli
