#include "search/plan_compare.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "plan/block_layout.h"
#include "search/baseline_plans.h"
#include "base/parallel_for.h"

namespace sparseplan {
namespace {

std::string grid_text(const Grid& g) {
  return std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" + std::to_string(g.width);
}

// Per query block the fewest key blocks reaching `recall` of its mass, within [lo, hi] blocks.
double online_recall(const TileGeometry& g, const float* mass, const std::vector<double>& w,
                     const OnlineRule& rule, int64_t* selected) {
  const int n = g.total_blocks;
  const int lo = std::max(0, int(std::ceil(rule.min_density * n - 1e-9)));
  const int hi = std::max(1, int(std::floor(rule.max_density * n + 1e-9)));
  std::vector<float> row(static_cast<size_t>(n));
  double recall = 0.0;
  for (int q = 0; q < n; ++q) {
    if (w[size_t(q)] == 0.0) continue;
    const float* src = mass + size_t(q) * n;
    std::copy(src, src + n, row.begin());
    double total = 0.0;
    for (float x : row) total += x;
    // A short partial sort serves concentrated rows; the rest get a full sort.
    const int first = std::min(n, 32);
    std::partial_sort(row.begin(), row.begin() + first, row.end(), std::greater<float>());
    int take = n;
    double covered = 0.0;
    for (int i = 0; i < n; ++i) {
      if (i == first) std::sort(row.begin() + first, row.end(), std::greater<float>());
      covered += row[size_t(i)];
      if (covered >= rule.recall * total * (1.0 - 1e-12)) {
        take = i + 1;
        break;
      }
    }
    take = std::max(lo, std::min(hi, take));
    if (take > first) std::sort(row.begin(), row.end(), std::greater<float>());
    covered = 0.0;
    for (int i = 0; i < take; ++i) covered += row[size_t(i)];
    recall += w[size_t(q)] * covered;
    *selected += take;
  }
  return recall;
}

}  // namespace

double RuleScore::worst() const {
  return recall.empty() ? 0.0 : *std::min_element(recall.begin(), recall.end());
}
double RuleScore::mean() const {
  return recall.empty() ? 0.0 : std::accumulate(recall.begin(), recall.end(), 0.0) / recall.size();
}

RuleScore score_rule(const TileGeometry& g, const HeadRule& rule, const HeadMass& mass) {
  check_head_mass(g, mass);
  const std::vector<double> tokens = video_query_tokens(g);
  RuleScore score;
  if (rule.kind == RuleKind::Dense) {
    score.density = 1.0;
    for (int s = 0; s < mass.samples; ++s) {
      const std::vector<double> w = recall_row_weights(tokens, mass.sample(s), mass.blocks);
      const bool any = std::any_of(w.begin(), w.end(), [](double x) { return x > 0.0; });
      score.recall.push_back(any ? 1.0 : 0.0);
    }
    return score;
  }
  if (rule.kind == RuleKind::Online) {
    int64_t selected = 0;
    for (int s = 0; s < mass.samples; ++s) {
      const std::vector<double> w = recall_row_weights(tokens, mass.sample(s), mass.blocks);
      score.recall.push_back(online_recall(g, mass.sample(s), w, rule.online, &selected));
    }
    score.density = double(selected) / (double(mass.samples) * g.video_blocks * g.total_blocks);
    return score;
  }
  const BlockLayout layout = compile_head_layout(g, rule);
  score.density = layout_density(g, layout);
  for (int s = 0; s < mass.samples; ++s) {
    const std::vector<double> w = recall_row_weights(tokens, mass.sample(s), mass.blocks);
    score.recall.push_back(layout_recall(layout, mass.sample(s), w));
  }
  return score;
}

double PlanScore::share_within(double target, double tolerance) const {
  int total = 0, ok = 0;
  for (const auto& layer : heads)
    for (const HeadScore& h : layer) {
      if (!h.scored) continue;
      ++total;
      ok += h.worst_recall >= target - tolerance ? 1 : 0;
    }
  return total == 0 ? 0.0 : double(ok) / total;
}

void check_plan_matches_source(const Plan& plan, const SourceInfo& info, const std::string& name) {
  const std::string what = "plan " + name + " does not fit the captures: ";
  if (plan.model.layers != info.model.layers || plan.model.heads != info.model.heads)
    throw std::invalid_argument(what + "it has " + std::to_string(plan.model.layers) + " layers x " +
                                std::to_string(plan.model.heads) + " heads, the captures " +
                                std::to_string(info.model.layers) + " x " +
                                std::to_string(info.model.heads));
  if (!plan.model.id.empty() && !info.model.id.empty() && plan.model.id != info.model.id)
    throw std::invalid_argument(what + "model '" + plan.model.id + "' vs '" + info.model.id + "'");
  if (!(plan.grid == info.grid))
    throw std::invalid_argument(what + "grid " + grid_text(plan.grid) + " vs " + grid_text(info.grid));
  if (plan.text.position != info.text.position || plan.text.tokens != info.text.tokens)
    throw std::invalid_argument(what + "text layout differs (" + std::to_string(plan.text.tokens) +
                                " vs " + std::to_string(info.text.tokens) + " tokens)");
  if (plan.block_size != info.block_size)
    throw std::invalid_argument(what + "block size " + std::to_string(plan.block_size) + " vs " +
                                std::to_string(info.block_size));
  if (!info.has_tile(plan.tile))
    throw std::invalid_argument(what + "tile " + tile_text(plan.tile) +
                                " was not captured (captured tiles: " +
                                [&] {
                                  std::string s;
                                  for (const auto& t : info.tiles) s += (s.empty() ? "" : ", ") + tile_text(t);
                                  return s;
                                }() + ")");
  if (int(plan.layers.size()) != plan.model.layers)
    throw std::invalid_argument(what + "it lists " + std::to_string(plan.layers.size()) +
                                " layers, its model has " + std::to_string(plan.model.layers));
  for (size_t l = 0; l < plan.layers.size(); ++l)
    if (int(plan.layers[l].size()) != plan.model.heads)
      throw std::invalid_argument(what + "layer " + std::to_string(l) + " lists " +
                                  std::to_string(plan.layers[l].size()) + " heads");
}

std::vector<PlanScore> score_plans(const std::vector<Plan>& plans,
                                   const std::vector<std::string>& names, const MassSource& source,
                                   const CompareOptions& options) {
  const SourceInfo& info = source.info();
  for (size_t i = 0; i < plans.size(); ++i) check_plan_matches_source(plans[i], info, names[i]);
  std::map<std::array<int, 3>, std::vector<size_t>> by_tile;
  for (size_t i = 0; i < plans.size(); ++i) by_tile[plans[i].tile].push_back(i);

  const int L = info.model.layers, H = info.model.heads;
  std::vector<PlanScore> scores(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    scores[i].name = names[i];
    scores[i].tile = plans[i].tile;
    scores[i].heads.assign(size_t(L), std::vector<HeadScore>(size_t(H)));
  }
  parallel_for(int(info.layers.size()) * H, options.threads, [&](int job) {
    const int l = info.layers[size_t(job / H)], h = job % H;
    for (const auto& [tile, members] : by_tile) {
      const TileGeometry g = info.geometry(tile);
      const HeadMass mass = source.head_mass(tile, l, h);
      const std::vector<double> tokens = video_query_tokens(g);
      for (size_t i : members) {
        const HeadRule& rule = plans[i].layers[size_t(l)][size_t(h)];
        const RuleScore r = score_rule(g, rule, mass);
        HeadScore& out = scores[i].heads[size_t(l)][size_t(h)];
        out.kind = rule.kind;
        out.scored = true;
        out.density = r.density;
        out.mean_recall = r.mean();
        out.worst_recall = r.worst();
        if (options.oracle) {
          double sum = 0.0;
          for (int s = 0; s < mass.samples; ++s)
            sum += oracle_topk_recall(g, mass.sample(s),
                                      recall_row_weights(tokens, mass.sample(s), mass.blocks),
                                      r.density);
          out.oracle_recall = sum / mass.samples;
        }
      }
    }
    if (options.progress) options.progress();
  });
  for (PlanScore& p : scores) {
    double d = 0.0, m = 0.0, o = 0.0, worst = 1.0;
    for (const auto& layer : p.heads)
      for (const HeadScore& h : layer) {
        if (!h.scored) continue;
        d += h.density;
        m += h.mean_recall;
        o += h.oracle_recall;
        worst = std::min(worst, h.worst_recall);
      }
    const double n = double(info.layers.size()) * H;
    p.mean_density = d / n;
    p.mean_recall = m / n;
    p.worst_recall = worst;
    p.oracle_recall = options.oracle ? o / n : -1.0;
  }
  return scores;
}

PlanScore score_plan(const Plan& plan, const std::string& name, const MassSource& source,
                     const CompareOptions& options) {
  return score_plans({plan}, {name}, source, options).front();
}

double BaselineFamily::recall_at(double density, bool* inside) const {
  // Best recall reachable at or below each member's density: the family's frontier.
  std::vector<std::pair<double, double>> front;
  for (const PlanScore& m : members) {
    if (!front.empty() && m.mean_recall <= front.back().second) continue;
    front.push_back({m.mean_density, m.mean_recall});
  }
  if (front.empty()) return 0.0;
  if (inside) *inside = density >= front.front().first - 1e-12 && density <= front.back().first + 1e-12;
  if (density <= front.front().first) return front.front().second;
  for (size_t i = 1; i < front.size(); ++i)
    if (density <= front[i].first) {
      const auto& [d0, r0] = front[i - 1];
      const auto& [d1, r1] = front[i];
      return r0 + (r1 - r0) * (density - d0) / std::max(d1 - d0, 1e-12);
    }
  return front.back().second;
}

std::vector<BaselineFamily> score_baselines(const MassSource& source,
                                            const std::array<int, 3>& tile,
                                            const CompareOptions& options) {
  const SourceInfo& info = source.info();
  if (!info.has_tile(tile))
    throw std::invalid_argument("baselines: the captures hold no tile " + tile_text(tile));
  const TileGeometry g = info.geometry(tile);
  ModelPreset preset;
  preset.model = info.model;
  preset.text = info.text;

  std::vector<Plan> plans;
  std::vector<std::string> names, families;
  const auto add = [&](const std::string& family, const std::string& name, BaselineOptions o) {
    if (std::find(names.begin(), names.end(), name) != names.end()) return;  // clipped twin
    o.tile = tile;
    o.block_size = info.block_size;
    plans.push_back(make_baseline_plan(preset, info.grid, o));
    names.push_back(name);
    families.push_back(family);
  };
  const std::vector<double> scales = {0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0};
  const auto along = [](double s, int n) { return std::max(1, std::min(n, int(std::ceil(s * n)))); };
  for (int wf : {1, 3, 5}) {
    if (wf > 2 * g.tiles_f - 1 && wf > 1) continue;
    for (double s : scales) {
      BaselineOptions o;
      o.kind = BaselineKind::SlidingTile;
      o.window = {wf, along(s, g.tiles_h), along(s, g.tiles_w)};
      add("sliding-tile", "sliding-tile " + std::to_string(o.window[0]) + "x" +
                              std::to_string(o.window[1]) + "x" + std::to_string(o.window[2]),
          o);
    }
  }
  for (double s : scales) {
    BaselineOptions o;
    o.kind = BaselineKind::Radial;
    o.radial_base = {along(s, g.tiles_h), along(s, g.tiles_w)};
    add("radial", "radial " + std::to_string(o.radial_base[0]) + "x" + std::to_string(o.radial_base[1]), o);
  }
  {
    BaselineOptions o;
    o.kind = BaselineKind::SpatialTemporal;
    add("spatial-temporal", "spatial-temporal", o);
  }
  CompareOptions quiet = options;
  quiet.oracle = false;
  const std::vector<PlanScore> scores = score_plans(plans, names, source, quiet);
  std::vector<BaselineFamily> out;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (out.empty() || out.back().name != families[i]) out.push_back({families[i], {}});
    out.back().members.push_back(scores[i]);
  }
  for (BaselineFamily& f : out)
    std::stable_sort(f.members.begin(), f.members.end(), [](const PlanScore& a, const PlanScore& b) {
      return a.mean_density < b.mean_density;
    });
  return out;
}

std::string comparison_table(const std::vector<PlanScore>& scores, bool markdown) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(4);
  const char* sep = markdown ? " | " : "  ";
  if (markdown) out << "| ";
  out << std::left << std::setw(32) << "plan" << sep << std::setw(7) << "tile" << sep
      << "density" << sep << "mean recall" << sep << "worst recall" << sep << "oracle top-k";
  if (markdown) out << " |\n|---|---|---|---|---|---|";
  out << "\n";
  for (const PlanScore& s : scores) {
    if (markdown) out << "| ";
    out << std::left << std::setw(32) << s.name << sep << std::setw(7) << tile_text(s.tile) << sep
        << std::right << std::setw(7) << s.mean_density << sep << std::setw(11) << s.mean_recall
        << sep << std::setw(12) << s.worst_recall << sep;
    if (s.oracle_recall >= 0.0)
      out << std::setw(12) << s.oracle_recall;
    else
      out << std::setw(12) << "-";
    if (markdown) out << " |";
    out << "\n";
  }
  return out.str();
}

}  // namespace sparseplan
