#include "io/evaluation_file.h"

#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"

namespace sparseplan {
namespace {

using nlohmann::json;

struct Entry {
  const std::string& path;
  const json& object;
  size_t index;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw std::invalid_argument(path + ": [" + std::to_string(index) + "]." + field + ": " + what);
  }

  double number(const std::string& field, bool required, bool may_be_infinite) const {
    const auto it = object.find(field);
    if (it == object.end()) {
      if (required) fail(field, "missing");
      return std::nan("");
    }
    if (it->is_number()) {
      const double v = it->get<double>();
      if (!std::isfinite(v)) fail(field, "not a finite number");
      return v;
    }
    if (may_be_infinite && (it->is_null() || (it->is_string() && (*it == "inf" || *it == "Infinity"))))
      return INFINITY;
    if (!required && it->is_null()) return std::nan("");
    fail(field, may_be_infinite ? "expected a number, null or \"inf\"" : "expected a number");
  }
};

}  // namespace

std::vector<PlanFidelity> read_evaluation_file(const std::string& path) {
  const std::string text = read_text_file(path);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(path + ": not valid JSON: " + e.what());
  }
  // `sparseplan evaluate` writes its rows under "rows"; "plans" is the older spelling.
  for (const char* member : {"rows", "plans"})
    if (root.is_object() && root.contains(member)) {
      root = json(root[member]);
      break;
    }
  if (!root.is_array())
    throw std::invalid_argument(path + ": expected an array of plan results (or an object with "
                                       "\"rows\" or \"plans\")");
  if (root.empty()) throw std::invalid_argument(path + ": holds no plan results");
  std::vector<PlanFidelity> rows;
  for (size_t i = 0; i < root.size(); ++i) {
    if (!root[i].is_object())
      throw std::invalid_argument(path + ": [" + std::to_string(i) + "]: expected an object");
    const Entry e{path, root[i], i};
    PlanFidelity r;
    const auto plan = root[i].find("plan");
    if (plan == root[i].end() || !plan->is_string() || plan->get<std::string>().empty())
      e.fail("plan", "expected the plan's name as a non-empty string");
    r.plan = plan->get<std::string>();
    r.density = e.number("density", true, false);
    if (r.density < 0.0) e.fail("density", "negative");
    r.psnr_mean = e.number("psnr_mean", true, true);
    r.psnr_worst = e.number("psnr_worst", false, true);
    r.ssim = e.number("ssim", false, false);
    r.rel_l2 = e.number("rel_l2", false, false);
    r.predicted_ms = e.number("predicted_ms", false, false);
    r.measured_ms = e.number("measured_ms", false, false);
    rows.push_back(r);
  }
  return rows;
}

}  // namespace sparseplan
