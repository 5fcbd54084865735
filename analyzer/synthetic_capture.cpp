#include "analyzer/synthetic_capture.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sparseplan {
namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t a, uint64_t b) { return mix(a ^ mix(b)); }

// Uniform in (0, 1) and standard normal from a hash, so every value is reproducible alone.
double unit(uint64_t h) { return (double(h >> 11) + 0.5) / 9007199254740992.0; }
double normal(uint64_t h) {
  return std::sqrt(-2.0 * std::log(unit(h))) * std::cos(6.283185307179586 * unit(mix(h)));
}

struct Centre {
  double f = 0, h = 0, w = 0;
  int valid = 0;
};

std::vector<Centre> block_centres(const TileGeometry& g) {
  const TokenOrder order = make_token_order(g);
  std::vector<Centre> c(size_t(g.total_blocks));
  const int64_t video_offset = g.text.position == TextPosition::Before ? g.text.tokens : 0;
  for (int b = 0; b < g.total_blocks; ++b) {
    Centre& x = c[size_t(b)];
    for (int i = 0; i < g.block_size; ++i) {
      const int32_t tok = order.token_of_slot[size_t(b) * g.block_size + i];
      if (tok < 0) continue;
      const int64_t v = tok - video_offset;
      if (v < 0 || v >= g.grid.tokens()) continue;  // text tokens have no position
      x.f += double(v / (int64_t(g.grid.height) * g.grid.width));
      x.h += double((v / g.grid.width) % g.grid.height);
      x.w += double(v % g.grid.width);
      ++x.valid;
    }
    if (x.valid > 0) {
      x.f /= x.valid;
      x.h /= x.valid;
      x.w /= x.valid;
    }
  }
  return c;
}

}  // namespace

const char* planted_pattern_name(PlantedPattern p) {
  switch (p) {
    case PlantedPattern::LocalWindow: return "local";
    case PlantedPattern::SpatialOnly: return "spatial";
    case PlantedPattern::TemporalStripe: return "temporal";
    case PlantedPattern::Cross: return "cross";
    case PlantedPattern::FirstFrameSink: return "sink";
    case PlantedPattern::GlobalBlocks: return "global";
    case PlantedPattern::Diffuse: return "diffuse";
    case PlantedPattern::PerPrompt: return "per-prompt";
  }
  return "?";
}

PlantedPattern parse_planted_pattern(const std::string& name) {
  for (PlantedPattern p :
       {PlantedPattern::LocalWindow, PlantedPattern::SpatialOnly, PlantedPattern::TemporalStripe,
        PlantedPattern::Cross, PlantedPattern::FirstFrameSink, PlantedPattern::GlobalBlocks,
        PlantedPattern::Diffuse, PlantedPattern::PerPrompt})
    if (name == planted_pattern_name(p)) return p;
  throw std::invalid_argument("unknown planted pattern '" + name +
                              "' (local, spatial, temporal, cross, sink, global, diffuse, "
                              "per-prompt)");
}

PlantedHead planted_head(const SyntheticSpec& spec, int layer, int head) {
  if (!spec.heads.empty()) {
    if (layer >= int(spec.heads.size()) || head >= int(spec.heads[size_t(layer)].size()))
      throw std::invalid_argument("synthetic spec: no planted head for layer " +
                                  std::to_string(layer) + " head " + std::to_string(head));
    return spec.heads[size_t(layer)][size_t(head)];
  }
  // Mostly local heads of varied widths, as in real video DiTs, with the other patterns mixed in.
  static const PlantedPattern cycle[] = {
      PlantedPattern::LocalWindow, PlantedPattern::LocalWindow,   PlantedPattern::SpatialOnly,
      PlantedPattern::LocalWindow, PlantedPattern::TemporalStripe, PlantedPattern::LocalWindow,
      PlantedPattern::Cross,       PlantedPattern::FirstFrameSink, PlantedPattern::LocalWindow,
      PlantedPattern::GlobalBlocks, PlantedPattern::Diffuse,      PlantedPattern::PerPrompt};
  const uint64_t h = mix(spec.seed, uint64_t(layer) * 1000003 + uint64_t(head));
  PlantedHead p;
  p.pattern = cycle[(size_t(layer) * 5 + size_t(head)) % 12];
  p.sigma_f = 0.7 + 2.0 * unit(mix(h, 1));
  p.sigma_h = 1.5 + 5.0 * unit(mix(h, 2));
  p.sigma_w = 1.5 + 5.0 * unit(mix(h, 3));
  return p;
}

HeadMass synthetic_head_mass(const SyntheticSpec& spec, const TileGeometry& g, int layer,
                             int head) {
  const PlantedHead p = planted_head(spec, layer, head);
  const std::vector<Centre> centre = block_centres(g);
  const int n = g.total_blocks;
  HeadMass mass;
  mass.samples = spec.prompts * spec.steps;
  mass.blocks = n;
  mass.values.assign(size_t(mass.samples) * n * n, 0.0f);
  const uint64_t head_seed = mix(spec.seed, uint64_t(layer) * 7919 + uint64_t(head) + 17);
  const int frames = g.grid.frames;
  std::vector<double> row(static_cast<size_t>(n));
  double valid_total = 0.0;
  for (const Centre& c : centre) valid_total += c.valid;

  for (int s = 0; s < mass.samples; ++s) {
    const int prompt = spec.first_prompt + s / spec.steps;
    const uint64_t sample_seed = mix(head_seed, uint64_t(prompt) * 1000 + uint64_t(s % spec.steps) + 1);
    const uint64_t prompt_seed = mix(head_seed, uint64_t(prompt) + 1000);
    float* out = mass.sample(s);
    for (int q = 0; q < n; ++q) {
      const Centre& cq = centre[size_t(q)];
      if (cq.valid == 0) continue;  // text and empty blocks: rows of zeros, as captured
      double total = 0.0;
      for (int k = 0; k < n; ++k) {
        const Centre& ck = centre[size_t(k)];
        if (ck.valid == 0) {
          row[size_t(k)] = 0.0;
          continue;
        }
        const double df = (cq.f - ck.f) / p.sigma_f, dh = (cq.h - ck.h) / p.sigma_h,
                     dw = (cq.w - ck.w) / p.sigma_w;
        const double local = -0.5 * (df * df + dh * dh + dw * dw);
        double score = 0.0;
        switch (p.pattern) {
          case PlantedPattern::LocalWindow: score = local; break;
          case PlantedPattern::SpatialOnly: score = -0.5 * df * df * 4.0; break;
          case PlantedPattern::TemporalStripe: score = -0.5 * (dh * dh + dw * dw) * 4.0; break;
          case PlantedPattern::Cross:
            // The stripe is weighted up so that neither arm holds most of the mass.
            score = std::max(-0.5 * df * df * 4.0, 2.0 - 0.5 * (dh * dh + dw * dw) * 4.0);
            break;
          case PlantedPattern::FirstFrameSink:
            score = std::max(local, ck.f < std::max(1.0, frames / 8.0) ? 0.0 : -1e9);
            break;
          case PlantedPattern::GlobalBlocks: {
            const int vk = k - g.video_block_offset();
            const bool hot = vk >= 0 && mix(head_seed, uint64_t(vk) + 99) % 97 == 0;
            score = hot ? 2.5 : local;
            break;
          }
          case PlantedPattern::Diffuse: score = 0.0; break;
          case PlantedPattern::PerPrompt:
            score = mix(prompt_seed, uint64_t(q) * 1000003 + uint64_t(k)) % 29 == 0 ? 0.0 : -6.0;
            break;
        }
        const double noise = p.noise * normal(mix(sample_seed, uint64_t(q) * 1000003 + uint64_t(k)));
        const double x = ck.valid * std::exp(score + noise);
        row[size_t(k)] = x;
        total += x;
      }
      float* o = out + size_t(q) * n;
      double check = 0.0;
      for (int k = 0; k < n; ++k) {
        const double v = (1.0 - p.floor) * row[size_t(k)] / total +
                         p.floor * centre[size_t(k)].valid / valid_total;
        o[k] = float(v);
        check += o[k];
      }
      for (int k = 0; k < n; ++k) o[k] = float(o[k] / check);
    }
  }
  return mass;
}

CaptureInfo synthetic_capture_info(const SyntheticSpec& spec) {
  CaptureInfo info;
  info.model = spec.model;
  info.grid = spec.grid;
  info.text = spec.text;
  info.block_size = spec.block_size;
  info.tiles = spec.tiles;
  info.num_prompts = spec.prompts;
  for (int p = 0; p < spec.prompts; ++p) {
    info.prompts.push_back("synthetic prompt " + std::to_string(spec.first_prompt + p));
    info.seeds.push_back(int64_t(spec.first_prompt + p));
  }
  for (int s = 0; s < spec.steps; ++s) {
    info.steps.push_back(s * 10);
    info.timesteps.push_back(1000.0 * (1.0 - double(s) / std::max(1, spec.steps)));
  }
  info.sampler_json = "{\"synthetic\": true}";
  return info;
}

void write_synthetic_capture(const std::string& path, const SyntheticSpec& spec,
                             const std::function<void()>& progress) {
  CaptureWriter::Options options;
  options.lse_stats = false;
  CaptureWriter writer(path, synthetic_capture_info(spec), options);
  for (const auto& tile : spec.tiles) {
    const TileGeometry g = make_tile_geometry(spec.grid, tile, spec.block_size, spec.text);
    for (int l = 0; l < spec.model.layers; ++l)
      for (int h = 0; h < spec.model.heads; ++h) {
        const HeadMass m = synthetic_head_mass(spec, g, l, h);
        for (int p = 0; p < spec.prompts; ++p)
          for (int s = 0; s < spec.steps; ++s)
            writer.write_head_mass(tile, p, s, l, h, m.sample(p * spec.steps + s));
        if (progress) progress();
      }
  }
  writer.finish();
}

}  // namespace sparseplan
