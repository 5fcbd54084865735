#include "search/window_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace sparseplan {
namespace {

int window_start(int centre, int extent, int n) {
  const int start = centre - (extent - 1) / 2;
  return std::max(0, std::min(start, n - extent));
}

// Per-distance extent choice: indices into the candidate extents, -1 = no window.
struct Config {
  std::vector<int> ih, iw;
};

// Coverage tables of one (globals, sink) variant.
struct Variant {
  std::vector<int> globals;  // video block numbers
  bool sink = false;
  std::vector<double> base;  // [S]: text + globals + sink frame recall
  double base_count = 0.0;   // selected pairs outside the windows
  std::vector<double> cov;   // [S][D][E]: recall of windows at distance d with extent e
  std::vector<double> count; // [D][E]: selected pairs of those windows (not globals, not sink)
};

}  // namespace

struct WindowSearch::Impl {
  TileGeometry g;
  WindowSearchOptions options;
  int S = 0, D = 0, T = 0, E = 0;
  std::vector<int> ext_h, ext_w;
  double pairs = 1.0;  // denominator of density
  std::vector<Variant> variants;

  int e_index(int ih, int iw) const { return ih * int(ext_w.size()) + iw; }

  double cov(const Variant& v, int s, int d, int ih, int iw) const {
    return ih < 0 ? 0.0 : v.cov[(size_t(s) * D + d) * E + size_t(e_index(ih, iw))];
  }
  double cnt(const Variant& v, int d, int ih, int iw) const {
    return ih < 0 ? 0.0 : v.count[size_t(d) * E + size_t(e_index(ih, iw))];
  }

  void build(const HeadMass& mass);
  WindowChoice search(const Variant& v, double target) const;
  WindowRule to_rule(const Variant& v, const Config& c) const;
};

std::vector<int> candidate_extents(int n) {
  std::vector<int> out;
  for (int e = 1; e <= std::min(n, 8); ++e) out.push_back(e);
  int e = 8;
  while (e < n) {
    e = std::min(n, std::max(e + 1, int(std::lround(e * 1.25))));
    out.push_back(e);
  }
  return out;
}

double WindowChoice::worst_recall() const {
  return recall.empty() ? 0.0 : *std::min_element(recall.begin(), recall.end());
}
double WindowChoice::mean_recall() const {
  return recall.empty() ? 0.0
                        : std::accumulate(recall.begin(), recall.end(), 0.0) / recall.size();
}

WindowSearch::WindowSearch(const TileGeometry& geometry, const HeadMass& mass,
                           const WindowSearchOptions& options)
    : impl_(std::make_unique<Impl>()) {
  check_head_mass(geometry, mass);
  impl_->g = geometry;
  impl_->options = options;
  impl_->build(mass);
}

WindowSearch::~WindowSearch() = default;

const std::vector<int>& WindowSearch::extents_h() const { return impl_->ext_h; }
const std::vector<int>& WindowSearch::extents_w() const { return impl_->ext_w; }

void WindowSearch::Impl::build(const HeadMass& mass) {
  S = mass.samples;
  D = g.tiles_f;
  T = g.num_tiles();
  ext_h = candidate_extents(g.tiles_h);
  ext_w = candidate_extents(g.tiles_w);
  E = int(ext_h.size() * ext_w.size());
  pairs = double(g.video_blocks) * g.total_blocks;
  const int n = g.total_blocks, vo = g.video_block_offset(), bpt = g.blocks_per_tile;
  const int HW = g.tiles_h * g.tiles_w;
  const std::vector<double> tokens = video_query_tokens(g);

  // Tile-aggregated recall contributions A[s][qt][kt], text-key recall, column shares.
  std::vector<double> A(size_t(S) * T * T, 0.0);
  std::vector<double> text_recall(size_t(S), 0.0);
  std::vector<double> column(size_t(S) * g.video_blocks, 0.0);
  std::vector<std::vector<double>> weights(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    const float* m = mass.sample(s);
    weights[size_t(s)] = recall_row_weights(tokens, m, n);
    const std::vector<double>& w = weights[size_t(s)];
    for (int vq = 0; vq < g.video_blocks; ++vq) {
      const double wq = w[size_t(vo + vq)];
      if (wq == 0.0) continue;
      const float* row = m + size_t(vo + vq) * n;
      double* a = A.data() + (size_t(s) * T + size_t(vq / bpt)) * T;
      double* col = column.data() + size_t(s) * g.video_blocks;
      for (int vk = 0; vk < g.video_blocks; ++vk) {
        const double x = wq * row[vo + vk];
        a[vk / bpt] += x;
        col[vk] += x;
      }
      double t = 0.0;
      for (int k = 0; k < n; ++k)
        if (k < vo || k >= vo + g.video_blocks) t += row[k];
      text_recall[size_t(s)] += wq * t;
    }
  }

  // Global candidates: blocks every sample attends to far above the uniform share, ranked by
  // their smallest share over samples.
  std::vector<std::pair<double, int>> ranked;
  const double threshold = options.global_min_share / g.video_blocks;
  for (int b = 0; b < g.video_blocks; ++b) {
    double lo = 1e300;
    for (int s = 0; s < S; ++s) lo = std::min(lo, column[size_t(s) * g.video_blocks + b]);
    if (lo >= threshold) ranked.push_back({-lo, b});
  }
  std::sort(ranked.begin(), ranked.end());
  if (int(ranked.size()) > options.max_global_blocks) ranked.resize(size_t(options.max_global_blocks));
  std::vector<int> global_counts = {0};
  for (int c : {1, 2, 4, 8, 16, 32, 64})
    if (c < int(ranked.size())) global_counts.push_back(c);
  if (!ranked.empty()) global_counts.push_back(int(ranked.size()));

  // Per query tile, each global's mass (to take out of the window tables).
  const int G = int(ranked.size());
  std::vector<double> gmass(size_t(S) * T * std::max(G, 1), 0.0);
  for (int s = 0; s < S; ++s) {
    const float* m = mass.sample(s);
    const std::vector<double>& w = weights[size_t(s)];
    for (int vq = 0; vq < g.video_blocks; ++vq) {
      const double wq = w[size_t(vo + vq)];
      if (wq == 0.0) continue;
      for (int i = 0; i < G; ++i)
        gmass[(size_t(s) * T + size_t(vq / bpt)) * G + i] +=
            wq * m[size_t(vo + vq) * n + size_t(vo + ranked[size_t(i)].second)];
    }
  }

  // Window start per (centre, extent index), per axis.
  std::vector<int> h0(size_t(g.tiles_h) * ext_h.size()), w0(size_t(g.tiles_w) * ext_w.size());
  for (int c = 0; c < g.tiles_h; ++c)
    for (size_t i = 0; i < ext_h.size(); ++i)
      h0[size_t(c) * ext_h.size() + i] = window_start(c, ext_h[i], g.tiles_h);
  for (int c = 0; c < g.tiles_w; ++c)
    for (size_t i = 0; i < ext_w.size(); ++i)
      w0[size_t(c) * ext_w.size() + i] = window_start(c, ext_w[i], g.tiles_w);

  const int PW = g.tiles_w + 1;
  std::vector<double> prefix(size_t(g.tiles_h + 1) * PW);
  std::vector<double> rowbuf(static_cast<size_t>(T));
  // Sums a frame's tile values (frame-major within rowbuf) over every window of every extent
  // centred on query tile (qh, qw), adding to out[e]; returns the frame total.
  const auto rects = [&](const double* frame, int qh, int qw, double* out) {
    std::fill(prefix.begin(), prefix.begin() + PW, 0.0);
    for (int h = 0; h < g.tiles_h; ++h) {
      double run = 0.0;
      double* p = prefix.data() + size_t(h + 1) * PW;
      const double* up = prefix.data() + size_t(h) * PW;
      p[0] = 0.0;
      for (int w = 0; w < g.tiles_w; ++w) {
        run += frame[h * g.tiles_w + w];
        p[w + 1] = up[w + 1] + run;
      }
    }
    for (size_t ih = 0; ih < ext_h.size(); ++ih) {
      const int a = h0[size_t(qh) * ext_h.size() + ih], b = a + ext_h[ih];
      const double* pa = prefix.data() + size_t(a) * PW;
      const double* pb = prefix.data() + size_t(b) * PW;
      for (size_t iw = 0; iw < ext_w.size(); ++iw) {
        const int c = w0[size_t(qw) * ext_w.size() + iw], d = c + ext_w[iw];
        out[ih * ext_w.size() + iw] += pb[d] - pb[c] - pa[d] + pa[c];
      }
    }
    return prefix[size_t(g.tiles_h) * PW + g.tiles_w];
  };

  const bool can_sink = options.sinks && g.tiles_f > 1;
  for (int gc : global_counts) {
    // Tables for windows over all frames (cov/count) and their frame-0 part (cov0/count0),
    // so the sink variant is the difference plus the whole first frame.
    std::vector<double> cov(size_t(S) * D * E, 0.0), cov0(size_t(S) * D * E, 0.0);
    std::vector<double> count(size_t(D) * E, 0.0), count0(size_t(D) * E, 0.0);
    std::vector<double> frame0(size_t(S), 0.0), gsum(size_t(S), 0.0);
    double frame0_count = 0.0;
    std::vector<double> tile_blocks(static_cast<size_t>(T), double(bpt));
    for (int i = 0; i < gc; ++i) tile_blocks[size_t(ranked[size_t(i)].second / bpt)] -= 1.0;

    for (int qt = 0; qt < T; ++qt) {
      const TileCoord q = g.tile_coord(qt);
      for (int f = 0; f < g.tiles_f; ++f) {
        const int d = std::abs(f - q.f);
        double* out = count.data() + size_t(d) * E;
        const double total = rects(tile_blocks.data() + size_t(f) * HW, q.h, q.w, out);
        if (f == 0) {
          rects(tile_blocks.data(), q.h, q.w, count0.data() + size_t(d) * E);
          frame0_count += total * bpt;
        }
      }
    }
    for (double& c : count) c *= bpt;
    for (double& c : count0) c *= bpt;

    for (int s = 0; s < S; ++s) {
      for (int qt = 0; qt < T; ++qt) {
        const TileCoord q = g.tile_coord(qt);
        const double* a = A.data() + (size_t(s) * T + qt) * T;
        std::copy(a, a + T, rowbuf.begin());
        for (int i = 0; i < gc; ++i) {
          const double x = gmass[(size_t(s) * T + qt) * G + i];
          rowbuf[size_t(ranked[size_t(i)].second / bpt)] -= x;
          gsum[size_t(s)] += x;
        }
        for (int f = 0; f < g.tiles_f; ++f) {
          const int d = std::abs(f - q.f);
          const double total =
              rects(rowbuf.data() + size_t(f) * HW, q.h, q.w, cov.data() + (size_t(s) * D + d) * E);
          if (f == 0) {
            rects(rowbuf.data(), q.h, q.w, cov0.data() + (size_t(s) * D + d) * E);
            frame0[size_t(s)] += total;
          }
        }
      }
    }

    for (int sink = 0; sink <= (can_sink ? 1 : 0); ++sink) {
      Variant v;
      for (int i = 0; i < gc; ++i) v.globals.push_back(ranked[size_t(i)].second);
      v.sink = sink == 1;
      v.base.resize(size_t(S));
      for (int s = 0; s < S; ++s)
        v.base[size_t(s)] = text_recall[size_t(s)] + gsum[size_t(s)] + (v.sink ? frame0[size_t(s)] : 0.0);
      v.base_count = double(g.video_blocks) * (gc + g.text_blocks) + (v.sink ? frame0_count : 0.0);
      v.cov = cov;
      v.count = count;
      if (v.sink) {
        for (size_t i = 0; i < v.cov.size(); ++i) v.cov[i] -= cov0[i];
        for (size_t i = 0; i < v.count.size(); ++i) v.count[i] -= count0[i];
      }
      variants.push_back(std::move(v));
    }
  }
}

WindowRule WindowSearch::Impl::to_rule(const Variant& v, const Config& c) const {
  WindowRule rule;
  for (int d = 0; d < D; ++d) {
    if (c.ih[size_t(d)] < 0) break;
    const int eh = ext_h[size_t(c.ih[size_t(d)])], ew = ext_w[size_t(c.iw[size_t(d)])];
    if (!rule.groups.empty() && rule.groups.back().tiles_h == eh && rule.groups.back().tiles_w == ew)
      rule.groups.back().max_frame_distance = d;
    else
      rule.groups.push_back({d, eh, ew});
  }
  if (v.sink) rule.sink_frames.push_back(0);
  rule.global_blocks = v.globals;
  std::sort(rule.global_blocks.begin(), rule.global_blocks.end());
  return rule;
}

WindowChoice WindowSearch::Impl::search(const Variant& v, double target) const {
  const int NH = int(ext_h.size()), NW = int(ext_w.size());
  Config c;
  c.ih.assign(size_t(D), -1);
  c.iw.assign(size_t(D), -1);
  c.ih[0] = 0;
  c.iw[0] = 0;

  std::vector<double> a(static_cast<size_t>(S)), t(static_cast<size_t>(S));
  const auto evaluate = [&](const Config& x, std::vector<double>& rec) {
    double cost = v.base_count;
    for (int s = 0; s < S; ++s) rec[size_t(s)] = v.base[size_t(s)];
    for (int d = 0; d < D; ++d) {
      if (x.ih[size_t(d)] < 0) continue;
      cost += cnt(v, d, x.ih[size_t(d)], x.iw[size_t(d)]);
      for (int s = 0; s < S; ++s) rec[size_t(s)] += cov(v, s, d, x.ih[size_t(d)], x.iw[size_t(d)]);
    }
    return cost;
  };
  // Full windows bound what any rule of this variant reaches; aim no higher.
  Config full;
  full.ih.assign(size_t(D), NH - 1);
  full.iw.assign(size_t(D), NW - 1);
  std::vector<double> best_possible(static_cast<size_t>(S));
  evaluate(full, best_possible);
  for (int s = 0; s < S; ++s) t[size_t(s)] = std::min(target, best_possible[size_t(s)] - 1e-9);

  double cost = evaluate(c, a);
  const auto feasible = [&](const std::vector<double>& rec) {
    for (int s = 0; s < S; ++s)
      if (rec[size_t(s)] < t[size_t(s)]) return false;
    return true;
  };

  std::vector<double> delta(static_cast<size_t>(S));
  while (!feasible(a)) {
    double best_ratio = -1.0, best_dc = 0.0;
    int best_d = -1, best_h = -1, best_w = -1;
    for (int d = 0; d < D; ++d) {
      const int ch = c.ih[size_t(d)], cw = c.iw[size_t(d)];
      for (int ih = std::max(ch, 0); ih < NH; ++ih)
        for (int iw = std::max(cw, 0); iw < NW; ++iw) {
          if (ih == ch && iw == cw) continue;
          double dc = 0.0;
          std::fill(delta.begin(), delta.end(), 0.0);
          for (int e = 0; e <= d; ++e) {
            const int oh = c.ih[size_t(e)], ow = c.iw[size_t(e)];
            const int nh = std::max(oh, ih), nw = std::max(ow, iw);
            if (nh == oh && nw == ow) continue;
            dc += cnt(v, e, nh, nw) - cnt(v, e, oh, ow);
            for (int s = 0; s < S; ++s)
              delta[size_t(s)] += cov(v, s, e, nh, nw) - cov(v, s, e, oh, ow);
          }
          double gain = 0.0;
          for (int s = 0; s < S; ++s)
            gain += std::min(a[size_t(s)] + delta[size_t(s)], t[size_t(s)]) -
                    std::min(a[size_t(s)], t[size_t(s)]);
          if (gain <= 1e-15) continue;
          const double ratio = gain / std::max(dc, 1e-9);
          if (ratio > best_ratio * (1.0 + 1e-12)) {
            best_ratio = ratio;
            best_dc = dc;
            best_d = d;
            best_h = ih;
            best_w = iw;
          }
        }
    }
    if (best_d < 0) {
      c = full;
      cost = evaluate(c, a);
      break;
    }
    (void)best_dc;
    for (int e = 0; e <= best_d; ++e) {
      c.ih[size_t(e)] = std::max(c.ih[size_t(e)], best_h);
      c.iw[size_t(e)] = std::max(c.iw[size_t(e)], best_w);
    }
    cost = evaluate(c, a);
  }

  // Prune: shrink single distances while every sample stays at target, biggest saving first.
  std::vector<double> rec(static_cast<size_t>(S));
  while (true) {
    double best_saving = 1e-9;
    Config best = c;
    for (int d = 0; d < D; ++d) {
      const int ch = c.ih[size_t(d)], cw = c.iw[size_t(d)];
      if (ch < 0) continue;
      const bool last = d + 1 == D || c.ih[size_t(d) + 1] < 0;
      const int lh = d + 1 < D ? c.ih[size_t(d) + 1] : -1;
      const int lw = d + 1 < D ? c.iw[size_t(d) + 1] : -1;
      for (int ih = (d > 0 && last) ? -1 : std::max(lh, 0); ih <= ch; ++ih)
        for (int iw = (ih < 0 ? -1 : std::max(lw, 0)); iw <= (ih < 0 ? -1 : cw); ++iw) {
          if (ih == ch && iw == cw) continue;
          Config x = c;
          x.ih[size_t(d)] = ih;
          x.iw[size_t(d)] = iw;
          const double xc = evaluate(x, rec);
          if (cost - xc > best_saving && feasible(rec)) {
            best_saving = cost - xc;
            best = x;
          }
        }
    }
    if (best_saving <= 1e-9 || best.ih == c.ih && best.iw == c.iw) break;
    c = best;
    cost = evaluate(c, a);
  }

  WindowChoice choice;
  choice.rule = to_rule(v, c);
  choice.density = cost / pairs;
  choice.recall = a;
  return choice;
}

WindowChoice WindowSearch::best_for_recall(double target) const {
  WindowChoice best;
  bool have = false;
  for (const Variant& v : impl_->variants) {
    WindowChoice c = impl_->search(v, target);
    const bool reaches = c.worst_recall() >= std::min(target, 1.0 - 1e-6) - 1e-9;
    const bool best_reaches = have && best.worst_recall() >= std::min(target, 1.0 - 1e-6) - 1e-9;
    if (!have || (reaches && !best_reaches) ||
        (reaches == best_reaches && c.density < best.density - 1e-12)) {
      best = std::move(c);
      have = true;
    }
  }
  return best;
}

}  // namespace sparseplan
