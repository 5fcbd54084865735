// Reads a sparsity plan from JSON and checks every field against the format of
// docs/plan-format.md. Every problem is reported with its JSON path, e.g.
// "layers[3].heads[7].window.groups[1].tiles: expected 2 positive integers".
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace sparseplan {

class PlanError : public std::runtime_error {
 public:
  PlanError(const std::string& source, std::vector<std::string> errors);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

// Parses plan JSON text strictly: beyond JSON syntax, a key given twice in one object (nlohmann
// would keep the last silently) and control characters in strings (U+0000 to U+001F and U+007F;
// `description` may hold tabs and newlines) are errors. Throws PlanError naming `source` with
// every problem at its JSON path; a syntax or number-range error names the path it was met at.
nlohmann::json parse_plan_json(const std::string& text, const std::string& source);

// Fills `plan` and returns the list of problems (empty when the plan is valid).
std::vector<std::string> parse_plan(const nlohmann::json& json, Plan& plan);

// Throws PlanError (all problems) for an invalid plan, std::runtime_error for a missing file or
// a path that is not a regular file.
Plan load_plan(const std::string& path);
// The text of a plan file; throws std::runtime_error naming the path when it is missing,
// unreadable or a directory.
std::string read_plan_file(const std::string& path);
Plan plan_from_json_text(const std::string& text, const std::string& source = "plan");

// Problems that make `plan` unusable for this model shape or video grid.
std::vector<std::string> check_plan_matches_model(const Plan& plan, const ModelInfo& model);
std::vector<std::string> check_plan_matches_grid(const Plan& plan, const Grid& grid,
                                                 const TextLayout& text);

}  // namespace sparseplan
