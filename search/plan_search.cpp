#include "search/plan_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "search/budget_allocation.h"
#include "base/parallel_for.h"
#include "plan/padding_cost.h"
#include "search/plan_compare.h"

namespace sparseplan {
namespace {

double worst(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
}

HeadRule window_head_rule(const WindowChoice& c) {
  HeadRule r;
  r.kind = RuleKind::Window;
  r.window = c.rule;
  r.stats = HeadStats{worst(c.recall), c.density};
  return r;
}

HeadRule dense_head_rule() {
  HeadRule r;
  r.kind = RuleKind::Dense;
  r.stats = HeadStats{1.0, 1.0};
  return r;
}

// Recall mode: the cheapest acceptable rule of one head.
HeadSearchResult search_head(const SourceInfo& info, const TileGeometry& g, const HeadMass& mass,
                             const PlanSearchOptions& o, double target) {
  HeadSearchResult out;
  const WindowSearch ws(g, mass, o.window);
  const WindowChoice w = ws.best_for_recall(target);
  out.window_density = w.density;
  HeadRule best = window_head_rule(w);

  // Online selection is worth it only for heads whose blocks change between prompts (static
  // blocks fitted to a few prompts would not hold for the next one) and when selecting per
  // input costs much less than the window.
  bool varies = false;
  HeadRule online;
  if (w.density > o.online_min_static) {
    online.kind = RuleKind::Online;
    online.online = OnlineRule{std::min(1.0, target), 0.0, 1.0};
    const RuleScore s = score_rule(g, online, mass);
    out.online_density = s.density;
    online.stats = HeadStats{s.worst(), s.density};
    if (s.density < o.online_advantage * w.density) {
      out.prompt_overlap = prompt_overlap(g, mass, info.sample_prompt, info.sample_step);
      varies = out.prompt_overlap < o.online_max_overlap;
    }
  }
  if (o.allow_blocks && !varies && w.density > 0.02) {
    const BlocksChoice b = search_blocks_rule(g, mass, target, o.blocks_advantage * w.density);
    out.blocks_density = b.density;
    if (b.density < o.blocks_advantage * best.stats->density && worst(b.recall) >= target - 1e-9) {
      best = HeadRule{};
      best.kind = RuleKind::Blocks;
      best.blocks = b.rule;
      best.stats = HeadStats{worst(b.recall), b.density};
    }
  }
  if (o.allow_online && varies && online.stats->density < o.online_advantage * best.stats->density)
    best = online;
  if (best.stats->density > o.dense_above) best = dense_head_rule();
  out.rule = best;
  return out;
}

// Budget mode: the window rules of one head at every recall level, plus dense.
std::vector<HeadRule> head_ladder(const TileGeometry& g, const HeadMass& mass,
                                  const PlanSearchOptions& o) {
  const WindowSearch ws(g, mass, o.window);
  std::vector<HeadRule> ladder;
  for (double level : budget_recall_levels()) {
    const WindowChoice c = ws.best_for_recall(level);
    if (c.density < o.dense_above) ladder.push_back(window_head_rule(c));
  }
  ladder.push_back(dense_head_rule());
  return ladder;
}

void check_options(const SourceInfo& info, const PlanSearchOptions& o) {
  if (o.density_budget > 0.0) {
    if (o.density_budget > 1.0)
      throw std::invalid_argument("--budget " + std::to_string(o.density_budget) +
                                  " outside (0, 1]: it is the mean density over heads");
  } else if (!(o.target_recall > 0.0 && o.target_recall <= 1.0)) {
    throw std::invalid_argument("--recall " + std::to_string(o.target_recall) + " outside (0, 1]");
  }
  if (o.margin < 0.0 || o.margin >= 0.5)
    throw std::invalid_argument("--margin " + std::to_string(o.margin) + " outside [0, 0.5)");
  for (const auto& t : o.tiles)
    if (!info.has_tile(t))
      throw std::invalid_argument("tile " + tile_text(t) + " was not captured");
  if (o.threads < 1) throw std::invalid_argument("threads: expected at least 1");
}

}  // namespace

const std::vector<double>& budget_recall_levels() {
  static const std::vector<double> levels = {0.2,  0.3,  0.4,  0.5,  0.6,  0.7,  0.75,
                                             0.8,  0.85, 0.88, 0.9,  0.92, 0.94, 0.95,
                                             0.96, 0.97, 0.98, 0.99, 0.995};
  return levels;
}

BlocksChoice search_blocks_rule(const TileGeometry& g, const HeadMass& mass, double target,
                                double max_density) {
  check_head_mass(g, mass);
  const int n = g.total_blocks, vo = g.video_block_offset(), V = g.video_blocks, S = mass.samples;
  const std::vector<double> tokens = video_query_tokens(g);
  std::vector<std::vector<double>> w(static_cast<size_t>(S));
  std::vector<double> recall(static_cast<size_t>(S), 0.0), reachable(static_cast<size_t>(S), 0.0);
  std::vector<float> score(size_t(V) * V, 0.0f);
  for (int s = 0; s < S; ++s) {
    w[size_t(s)] = recall_row_weights(tokens, mass.sample(s), n);
    for (int q = 0; q < V; ++q) {
      const double wq = w[size_t(s)][size_t(vo + q)];
      if (wq == 0.0) continue;
      const float* row = mass.sample(s) + size_t(vo + q) * n;
      double all = 0.0;
      for (int k = 0; k < n; ++k) all += row[k];
      double video = 0.0;
      for (int k = 0; k < V; ++k) {
        score[size_t(q) * V + size_t(k)] += float(wq * row[vo + k]);
        video += row[vo + k];
      }
      recall[size_t(s)] += wq * (all - video);  // text keys are always attended
      reachable[size_t(s)] += wq * all;
    }
  }
  // Only the best entries up to max_density can matter: partition them out, sort those.
  std::vector<int32_t> order;
  order.reserve(score.size());
  for (size_t i = 0; i < score.size(); ++i)
    if (score[i] > 0.0f) order.push_back(int32_t(i));
  const auto better = [&](int32_t a, int32_t b) {
    return score[size_t(a)] > score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
  };
  const double budget = max_density * double(V) * n - double(g.text_blocks) * V;
  const size_t keep = std::min(order.size(), size_t(std::max(0.0, std::ceil(budget))) + 1);
  if (keep < order.size()) {
    std::nth_element(order.begin(), order.begin() + keep, order.end(), better);
    order.resize(keep);
  }
  std::sort(order.begin(), order.end(), better);
  std::vector<double> t(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) t[size_t(s)] = std::min(target, reachable[size_t(s)] - 1e-9);
  const auto done = [&] {
    for (int s = 0; s < S; ++s)
      if (recall[size_t(s)] < t[size_t(s)]) return false;
    return true;
  };
  BlocksChoice out;
  out.rule.rows.assign(size_t(V), {});
  int64_t selected = 0;
  for (int32_t i : order) {
    if (done()) break;
    const int q = i / V, k = i % V;
    for (int s = 0; s < S; ++s)
      recall[size_t(s)] += w[size_t(s)][size_t(vo + q)] * mass.sample(s)[size_t(vo + q) * n + size_t(vo + k)];
    out.rule.rows[size_t(q)].push_back(k);
    ++selected;
  }
  for (auto& r : out.rule.rows) std::sort(r.begin(), r.end());
  out.density = double(selected + int64_t(g.text_blocks) * V) / (double(V) * n);
  out.recall = recall;
  return out;
}

double prompt_overlap(const TileGeometry& g, const HeadMass& mass,
                      const std::vector<int>& sample_prompt, const std::vector<int>& sample_step,
                      double recall) {
  const int S = mass.samples;
  std::vector<std::vector<uint8_t>> sets(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) sets[size_t(s)] = oracle_row_mask(g, mass.sample(s), recall);
  const bool single_prompt =
      std::all_of(sample_prompt.begin(), sample_prompt.end(),
                  [&](int p) { return p == sample_prompt.front(); });
  double sum = 0.0;
  int pairs = 0;
  for (int a = 0; a < S; ++a)
    for (int b = a + 1; b < S; ++b) {
      const bool counted = single_prompt || (sample_prompt[size_t(a)] != sample_prompt[size_t(b)] &&
                                             sample_step[size_t(a)] == sample_step[size_t(b)]);
      if (!counted) continue;
      sum += mask_jaccard(sets[size_t(a)], sets[size_t(b)]);
      ++pairs;
    }
  return pairs == 0 ? 1.0 : sum / pairs;
}

PlanSearchResult search_plan(const MassSource& source, const PlanSearchOptions& o) {
  const SourceInfo& info = source.info();
  check_options(info, o);
  const std::vector<std::array<int, 3>> tiles = o.tiles.empty() ? info.tiles : o.tiles;
  const int L = info.model.layers, H = info.model.heads;
  const bool budget_mode = o.density_budget > 0.0;
  const double target = std::min(1.0, o.target_recall + o.margin);

  PlanSearchResult best;
  TileResult chosen;
  bool have = false;
  for (const auto& tile : tiles) {
    const TileGeometry g = info.geometry(tile);
    auto heads = std::vector<std::vector<HeadSearchResult>>(size_t(L), std::vector<HeadSearchResult>(size_t(H)));
    std::vector<std::vector<HeadRule>> ladders(budget_mode ? info.layers.size() * H : 0);
    const int CL = int(info.layers.size());
    // Layers the captures lack stay dense: nothing says what they could drop.
    for (int l = 0; l < L; ++l)
      if (!info.has_layer(l))
        for (int h = 0; h < H; ++h) heads[size_t(l)][size_t(h)].rule = dense_head_rule();
    parallel_for(CL * H, o.threads, [&](int job) {
      const int l = info.layers[size_t(job / H)], h = job % H;
      const HeadMass mass = source.head_mass(tile, l, h);
      if (budget_mode)
        ladders[size_t(job)] = head_ladder(g, mass, o);
      else
        heads[size_t(l)][size_t(h)] = search_head(info, g, mass, o, target);
      if (o.progress) o.progress();
    });
    if (budget_mode) {
      std::vector<std::vector<BudgetOption>> options(ladders.size());
      for (size_t j = 0; j < ladders.size(); ++j)
        for (const HeadRule& r : ladders[j]) options[j].push_back({r.stats->density, r.stats->recall});
      const BudgetAllocation a = allocate_density_budget(options, o.density_budget);
      for (size_t j = 0; j < ladders.size(); ++j) {
        HeadSearchResult& r = heads[size_t(info.layers[j / size_t(H)])][j % size_t(H)];
        r.rule = ladders[j][size_t(a.choice[j])];
        r.window_density = r.rule.stats->density;
      }
    }
    TileResult tr;
    tr.tile = tile;
    tr.lowest_recall = 1.0;
    for (const auto& layer : heads)
      for (const HeadSearchResult& r : layer) {
        tr.mean_density += r.rule.stats->density / (double(L) * H);
        tr.lowest_recall = std::min(tr.lowest_recall, r.rule.stats->recall);
      }
    const PaddingCost padding = padding_cost(g);
    tr.padded_fraction = padding.padded_fraction();
    tr.cost = padding.cost(tr.mean_density);
    const bool better =
        !have || (budget_mode ? tr.lowest_recall > chosen.lowest_recall + 1e-12 ||
                                    (std::abs(tr.lowest_recall - chosen.lowest_recall) <= 1e-12 &&
                                     tr.cost < chosen.cost - 1e-12)
                              : tr.cost < chosen.cost - 1e-12);
    best.tiles.push_back(tr);
    if (better) {
      chosen = tr;
      best.plan.tile = tile;
      best.heads = std::move(heads);
      have = true;
    }
  }

  Plan& plan = best.plan;
  plan.model = info.model;
  plan.grid = info.grid;
  plan.text = info.text;
  plan.block_size = info.block_size;
  SearchInfo si;
  si.target_recall = budget_mode ? -1.0 : o.target_recall;
  si.density_budget = budget_mode ? o.density_budget : -1.0;
  si.tool = std::string("sparseplan ") + SPARSEPLAN_VERSION + " search";
  si.captures = info.captures;
  plan.search = si;
  plan.layers.assign(size_t(L), std::vector<HeadRule>(size_t(H)));
  int counts[4] = {0, 0, 0, 0};
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      plan.layers[size_t(l)][size_t(h)] = best.heads[size_t(l)][size_t(h)].rule;
      ++counts[int(plan.layers[size_t(l)][size_t(h)].kind)];
    }
  plan.description = std::string("searched ") +
                     (budget_mode ? "for mean density budget " + std::to_string(o.density_budget)
                                  : "for recall " + std::to_string(o.target_recall)) +
                     " on " + std::to_string(info.samples) + " samples: mean density " +
                     std::to_string(chosen.mean_density) + ", heads window/blocks/online/dense " +
                     std::to_string(counts[int(RuleKind::Window)]) + "/" +
                     std::to_string(counts[int(RuleKind::Blocks)]) + "/" +
                     std::to_string(counts[int(RuleKind::Online)]) + "/" +
                     std::to_string(counts[int(RuleKind::Dense)]);
  return best;
}

}  // namespace sparseplan
