// Writes a plan as readable JSON in the format plan_loader.h reads: one header field and one head
// rule per line, so plans stay short, readable and diff well.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace sparseplan {

nlohmann::ordered_json plan_to_json(const Plan& plan);
nlohmann::ordered_json head_rule_to_json(const HeadRule& rule);
std::string plan_to_text(const Plan& plan);
// Atomic: a failed write leaves any previous file at `path` as it was.
void write_plan(const std::string& path, const Plan& plan);

}  // namespace sparseplan
