// Command-line options that choose how the model computes, shared by the commands that run it.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "model/wan_model.h"

namespace sparseplan::cli {

// --sinusoid float64|float32 into *value (default float64, the official Wan2.1 code).
void add_sinusoid_option(CLI::App* sub, std::string* value);

// The precision an --sinusoid value names (checked by the option already).
SinusoidPrecision sinusoid_precision(const std::string& value);

}  // namespace sparseplan::cli
