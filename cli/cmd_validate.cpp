#include <iostream>

#include "cli/commands.h"
#include "plan/model_preset.h"
#include "plan/plan_loader.h"

namespace sparseplan::cli {

Command add_validate(CLI::App& app) {
  struct Options {
    std::string plan;
    std::string model;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand("validate", "Check a plan against the plan format; print every problem");
  sub->add_option("plan", o->plan, "Plan JSON file")->required();
  sub->add_option("--model", o->model,
                  "Also check that the plan fits this model preset (name or JSON path)");
  return {sub, [o]() {
            nlohmann::json root;
            std::vector<std::string> errors;
            try {
              root = parse_plan_json(read_plan_file(o->plan), o->plan);
            } catch (const PlanError& e) {
              errors = e.errors();
            }
            Plan plan;
            if (errors.empty()) errors = parse_plan(root, plan);
            if (errors.empty() && !o->model.empty()) {
              const ModelPreset preset = load_model_preset(o->model);
              errors = check_plan_matches_model(plan, preset.model);
            }
            if (!errors.empty()) {
              std::cerr << o->plan << ": invalid (" << errors.size() << " problem"
                        << (errors.size() == 1 ? "" : "s") << ")\n";
              for (const std::string& e : errors) std::cerr << "  " << e << "\n";
              return 1;
            }
            std::cout << o->plan << ": valid plan for " << plan.model.id << " ("
                      << plan.model.layers << " layers x " << plan.model.heads << " heads, grid "
                      << plan.grid.frames << "x" << plan.grid.height << "x" << plan.grid.width
                      << ")\n";
            return 0;
          }};
}

}  // namespace sparseplan::cli
