#include "plan/plan_writer.h"

#include <algorithm>
#include <cmath>

#include "base/atomic_file.h"

namespace sparseplan {

using json = nlohmann::ordered_json;

namespace {

double rounded(double x) { return std::round(x * 1e6) / 1e6; }

}  // namespace

json head_rule_to_json(const HeadRule& rule) {
  json j;
  j["rule"] = rule_kind_name(rule.kind);
  if (rule.kind == RuleKind::Window) {
    json groups = json::array();
    for (const WindowGroup& g : rule.window.groups)
      groups.push_back({{"max_frame_distance", g.max_frame_distance},
                        {"tiles", {g.tiles_h, g.tiles_w}}});
    json w = {{"groups", groups}};
    if (!rule.window.sink_frames.empty()) w["sink_frames"] = rule.window.sink_frames;
    if (!rule.window.global_blocks.empty()) w["global_blocks"] = rule.window.global_blocks;
    j["window"] = w;
  } else if (rule.kind == RuleKind::Blocks) {
    j["blocks"] = {{"rows", rule.blocks.rows}};
  } else if (rule.kind == RuleKind::Online) {
    j["online"] = {{"recall", rounded(rule.online.recall)},
                   {"min_density", rounded(rule.online.min_density)},
                   {"max_density", rounded(rule.online.max_density)}};
  }
  if (rule.stats) {
    json s = json::object();
    if (rule.stats->recall >= 0) s["recall"] = rounded(rule.stats->recall);
    if (rule.stats->density >= 0) s["density"] = rounded(rule.stats->density);
    j["stats"] = s;
  }
  return j;
}

json plan_to_json(const Plan& plan) {
  json j;
  j["format"] = Plan::kFormat;
  if (!plan.description.empty()) j["description"] = plan.description;
  j["model"] = {{"id", plan.model.id},
                {"layers", plan.model.layers},
                {"heads", plan.model.heads},
                {"head_dim", plan.model.head_dim}};
  j["grid"] = {{"frames", plan.grid.frames},
               {"height", plan.grid.height},
               {"width", plan.grid.width}};
  j["text"] = {{"position", text_position_name(plan.text.position)},
               {"tokens", plan.text.tokens}};
  j["block_size"] = plan.block_size;
  j["tile"] = plan.tile;
  j["schedule"] = {{"total_steps", plan.schedule.total_steps},
                   {"warmup_steps", plan.schedule.warmup_steps},
                   {"dense_steps", plan.schedule.dense_steps},
                   {"reselect_steps", plan.schedule.reselect_steps}};
  if (!plan.schedule.refresh_steps.empty())
    j["schedule"]["refresh_steps"] = plan.schedule.refresh_steps;
  if (plan.compensation != Compensation::None)
    j["compensation"] = compensation_name(plan.compensation);
  if (plan.search) {
    json s = json::object();
    if (plan.search->target_recall > 0) s["target_recall"] = rounded(plan.search->target_recall);
    if (plan.search->density_budget > 0)
      s["density_budget"] = rounded(plan.search->density_budget);
    if (!plan.search->tool.empty()) s["tool"] = plan.search->tool;
    s["captures"] = plan.search->captures;
    if (const auto& c = plan.search->calibration) {
      const auto psnr = [](double v) {
        return rounded(std::clamp(v, -CalibrationInfo::kMaxPsnr, CalibrationInfo::kMaxPsnr));
      };
      json cal = {{"prompts", c->prompts}, {"seeds", c->seeds}, {"steps", c->steps},
                  {"video", c->video},     {"guidance", rounded(c->guidance)}};
      if (c->target_psnr >= 0) cal["target_psnr"] = rounded(c->target_psnr);
      if (c->target_time_fraction > 0)
        cal["target_time_fraction"] = rounded(c->target_time_fraction);
      cal["psnr_mean"] = psnr(c->psnr_mean);
      cal["psnr_worst"] = psnr(c->psnr_worst);
      cal["time_fraction"] = rounded(c->time_fraction);
      cal["model_runs"] = c->model_runs;
      s["calibration"] = cal;
    }
    j["search"] = s;
  }
  json layers = json::array();
  for (const auto& heads : plan.layers) {
    json hs = json::array();
    for (const HeadRule& rule : heads) hs.push_back(head_rule_to_json(rule));
    layers.push_back({{"heads", hs}});
  }
  j["layers"] = layers;
  return j;
}

std::string plan_to_text(const Plan& plan) {
  const json j = plan_to_json(plan);
  std::string text = "{";
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    text += first ? "\n" : ",\n";
    first = false;
    text += "  " + json(it.key()).dump() + ": ";
    if (it.key() != "layers") {
      text += it->dump();
      continue;
    }
    text += "[";
    for (size_t l = 0; l < it->size(); ++l) {
      text += l == 0 ? "\n" : ",\n";
      text += "    {\"heads\": [";
      const json& heads = (*it)[l]["heads"];
      for (size_t h = 0; h < heads.size(); ++h) text += (h == 0 ? "\n      " : ",\n      ") + heads[h].dump();
      text += "\n    ]}";
    }
    text += "\n  ]";
  }
  text += "\n}\n";
  return text;
}

void write_plan(const std::string& path, const Plan& plan) {
  write_text_atomically(path, plan_to_text(plan));
}

}  // namespace sparseplan
