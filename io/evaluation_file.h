// Results of `sparseplan evaluate` read back for figures: one row per plan with its fidelity
// against dense sampling and its cost. The file is a JSON array of objects (or an object whose
// "rows" member is that array, as evaluate's results.json, or "plans") with the fields below. JSON has no infinity, so a PSNR of an
// identical video is written as null or as the string "inf".
#pragma once

#include <string>
#include <vector>

namespace sparseplan {

struct PlanFidelity {
  std::string plan;
  double density = 0.0;  // overall attention density, warm-up and selection counted
  double psnr_mean = 0.0, psnr_worst = 0.0;  // dB against dense; +inf for an identical video
  // Optional fields; NaN when the file does not give them.
  double ssim = 0.0, rel_l2 = 0.0, predicted_ms = 0.0, measured_ms = 0.0;
};

// Throws std::invalid_argument naming the file, the entry and the field for malformed input.
std::vector<PlanFidelity> read_evaluation_file(const std::string& path);

}  // namespace sparseplan
