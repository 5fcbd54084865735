#include "analyzer/head_pattern.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sparseplan {

const char* head_pattern_name(HeadPattern p) {
  switch (p) {
    case HeadPattern::LocalWindow: return "local 3D window";
    case HeadPattern::SpatialOnly: return "spatial-only";
    case HeadPattern::TemporalStripe: return "temporal stripe";
    case HeadPattern::Cross: return "cross-shaped";
    case HeadPattern::GlobalDiffuse: return "global/diffuse";
    case HeadPattern::SinkDominated: return "sink-dominated";
  }
  return "?";
}

HeadPatternResult classify_head(const TileGeometry& g, const HeadMass& mass) {
  check_head_mass(g, mass);
  const int n = g.total_blocks, vo = g.video_block_offset(), V = g.video_blocks;
  const int bpt = g.blocks_per_tile;
  const std::vector<double> tokens = video_query_tokens(g);
  HeadPatternNumbers x;
  std::vector<double> column(static_cast<size_t>(V), 0.0);
  double outside_first = 0.0, outside_first_total = 0.0;
  for (int s = 0; s < mass.samples; ++s) {
    const float* m = mass.sample(s);
    const std::vector<double> w = recall_row_weights(tokens, m, n);
    double d90 = 0.0;
    oracle_row_mask(g, m, 0.9, &d90);
    x.density_90 += d90 / mass.samples;
    for (int q = 0; q < V; ++q) {
      const double wq = w[size_t(vo + q)] / mass.samples;
      if (wq == 0.0) continue;
      const TileCoord tq = g.tile_coord(q / bpt);
      const float* row = m + size_t(vo + q) * n;
      double video = 0.0;
      for (int k = 0; k < V; ++k) {
        const double v = wq * row[vo + k];
        if (v == 0.0) continue;
        video += row[vo + k];
        const TileCoord tk = g.tile_coord(k / bpt);
        const int df = std::abs(tk.f - tq.f), dh = std::abs(tk.h - tq.h), dw = std::abs(tk.w - tq.w);
        column[size_t(k)] += v;
        if (df == 0) x.same_frame += v;
        if (df == 0 && (dh != 0 || dw != 0)) x.frame_spread += v;
        if (df == 0 && dh <= 1 && dw <= 1) x.local_in_frame += v;
        if (df <= 1 && dh <= 1 && dw <= 1) x.local_window += v;
        if (dh == 0 && dw == 0) {
          x.same_position += v;
          if (df > 0) x.stripe_far += v;
        }
        if (tq.f != 0 && tk.f == 0) outside_first += v;
      }
      if (tq.f != 0) {
        double all = 0.0;
        for (int k = 0; k < n; ++k) all += row[k];
        outside_first_total += wq * all;
      }
      double all = 0.0;
      for (int k = 0; k < n; ++k) all += row[k];
      x.text += wq * (all - video);
    }
  }
  x.local_in_frame = x.same_frame > 0.0 ? x.local_in_frame / x.same_frame : 0.0;
  x.first_frame = outside_first_total > 0.0 ? outside_first / outside_first_total : 0.0;
  std::sort(column.begin(), column.end(), std::greater<double>());
  const int top = std::max(1, V / 64);
  for (int i = 0; i < top && i < V; ++i) x.top_blocks += column[size_t(i)];

  HeadPatternResult r;
  r.numbers = x;
  char buf[160];
  const auto why = [&](const char* fmt, double a, double b = 0.0) {
    std::snprintf(buf, sizeof(buf), fmt, a, b);
    r.reason = buf;
  };
  if (g.tiles_f > 2 && x.first_frame >= 0.5) {
    r.pattern = HeadPattern::SinkDominated;
    why("%.2f of the mass of later frames goes to the first frame", x.first_frame);
  } else if (x.top_blocks >= 0.5) {
    r.pattern = HeadPattern::SinkDominated;
    why("%.2f of the mass goes to the top %.0f key blocks", x.top_blocks, top);
  } else if (x.density_90 >= 0.5) {
    r.pattern = HeadPattern::GlobalDiffuse;
    why("90%% recall needs density %.2f even per input", x.density_90);
  } else if (x.frame_spread >= 0.2 && x.stripe_far >= 0.2 && x.same_frame + x.stripe_far >= 0.75) {
    r.pattern = HeadPattern::Cross;
    why("%.2f across the own frame plus %.2f at the same position in other frames",
        x.frame_spread, x.stripe_far);
  } else if (x.same_position >= 0.6 && x.stripe_far >= 0.35) {
    r.pattern = HeadPattern::TemporalStripe;
    why("%.2f at the same spatial tile, %.2f of it in other frames", x.same_position, x.stripe_far);
  } else if (x.same_frame >= 0.7 && x.local_in_frame < 0.7) {
    r.pattern = HeadPattern::SpatialOnly;
    why("%.2f in the own frame, only %.2f of it near the query", x.same_frame, x.local_in_frame);
  } else if (x.local_window >= 0.6) {
    r.pattern = HeadPattern::LocalWindow;
    why("%.2f within one tile in every direction (density at 90%%: %.2f)", x.local_window, x.density_90);
  } else {
    r.pattern = HeadPattern::GlobalDiffuse;
    why("no structure holds most of the mass (local %.2f, own frame %.2f)", x.local_window, x.same_frame);
  }
  return r;
}

}  // namespace sparseplan
