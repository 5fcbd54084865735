#include "plan/plan_loader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include "base/atomic_file.h"
#include "plan/limits.h"
#include "plan/tile_geometry.h"

namespace sparseplan {
namespace {

using nlohmann::json;

// Without std::ostream: on the GPU machine's builds, modules that Python loads carry their own
// copy of libstdc++'s stream code, and inserting an integer crashed there (runtime/torch_ops.cpp,
// DEVELOPERS.md); strings are safe.
std::string join_errors(const std::string& source, const std::vector<std::string>& errors) {
  std::string s = source + ": invalid plan (" + std::to_string(errors.size()) +
                  (errors.size() == 1 ? " error)" : " errors)");
  for (const std::string& e : errors) s += "\n  " + e;
  return s;
}

// Collects problems with their JSON path while the plan is read field by field.
struct Reader {
  std::vector<std::string> errors;

  void fail(const std::string& path, const std::string& message) {
    errors.push_back(path + ": " + message);
  }

  static std::string key_path(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string index_path(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  // Reports keys of `object` that the format does not define, so typos are not ignored.
  void only_keys(const json& object, const std::string& path,
                 std::initializer_list<const char*> allowed) {
    for (auto it = object.begin(); it != object.end(); ++it) {
      const bool known = std::any_of(allowed.begin(), allowed.end(),
                                     [&](const char* k) { return it.key() == k; });
      if (!known) fail(key_path(path, it.key()), "unknown field");
    }
  }

  const json* field(const json& object, const std::string& path, const char* key,
                    bool required) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
      if (required) fail(key_path(path, key), "missing");
      return nullptr;
    }
    return &*it;
  }

  const json* object_field(const json& object, const std::string& path, const char* key,
                           bool required) {
    const json* v = field(object, path, key, required);
    if (v != nullptr && !v->is_object()) {
      fail(key_path(path, key), "expected an object");
      return nullptr;
    }
    return v;
  }

  bool read_int(const json& object, const std::string& path, const char* key, int& out,
                int min_value, int max_value, bool required) {
    const json* v = field(object, path, key, required);
    if (v == nullptr) return false;
    if (!v->is_number_integer()) {
      fail(key_path(path, key), "expected an integer");
      return false;
    }
    const int64_t x = v->get<int64_t>();
    if (x < min_value || x > max_value) {
      fail(key_path(path, key), "expected an integer in [" + std::to_string(min_value) + ", " +
                                    std::to_string(max_value) + "], got " + std::to_string(x));
      return false;
    }
    out = int(x);
    return true;
  }

  bool read_fraction(const json& object, const std::string& path, const char* key, double& out,
                     bool allow_zero, bool required) {
    const json* v = field(object, path, key, required);
    if (v == nullptr) return false;
    const double x = v->is_number() ? v->get<double>() : -1.0;
    if (!v->is_number() || x > 1.0 || x < 0.0 || (!allow_zero && x == 0.0)) {
      fail(key_path(path, key), allow_zero ? "expected a number in [0, 1]"
                                           : "expected a number in (0, 1]");
      return false;
    }
    out = x;
    return true;
  }

  bool read_string(const json& object, const std::string& path, const char* key,
                   std::string& out, bool required) {
    const json* v = field(object, path, key, required);
    if (v == nullptr) return false;
    if (!v->is_string()) {
      fail(key_path(path, key), "expected a string");
      return false;
    }
    out = v->get<std::string>();
    return true;
  }

  // An array of exactly `count` integers (count < 0: any length), each in [min, max].
  bool read_int_list(const json& object, const std::string& path, const char* key,
                     std::vector<int>& out, int count, int min_value, int max_value,
                     const std::string& what, bool required) {
    const json* v = field(object, path, key, required);
    if (v == nullptr) return false;
    bool ok = v->is_array() && (count < 0 || int(v->size()) == count);
    if (ok)
      for (const json& x : *v)
        ok = ok && x.is_number_integer() && x.get<int64_t>() >= min_value &&
             x.get<int64_t>() <= max_value;
    if (!ok) {
      fail(key_path(path, key), "expected " + what);
      return false;
    }
    out.clear();
    for (const json& x : *v) out.push_back(x.get<int>());
    return true;
  }
};

std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

std::string count_text(int n, const char* what) {
  return std::to_string(n) + " " + what;
}

void read_model(Reader& r, const json& root, Plan& plan) {
  const json* m = r.object_field(root, "", "model", true);
  if (m == nullptr) return;
  r.only_keys(*m, "model", {"id", "layers", "heads", "head_dim"});
  if (r.read_string(*m, "model", "id", plan.model.id, true) && plan.model.id.empty())
    r.fail("model.id", "expected a non-empty string");
  r.read_int(*m, "model", "layers", plan.model.layers, 1, kMaxLayers, true);
  r.read_int(*m, "model", "heads", plan.model.heads, 1, kMaxHeads, true);
  r.read_int(*m, "model", "head_dim", plan.model.head_dim, 1, kMaxHeadDim, true);
}

bool read_grid(Reader& r, const json& root, Plan& plan) {
  const json* g = r.object_field(root, "", "grid", true);
  if (g == nullptr) return false;
  r.only_keys(*g, "grid", {"frames", "height", "width"});
  bool ok = r.read_int(*g, "grid", "frames", plan.grid.frames, 1, kMaxGridExtent, true);
  ok = r.read_int(*g, "grid", "height", plan.grid.height, 1, kMaxGridExtent, true) && ok;
  ok = r.read_int(*g, "grid", "width", plan.grid.width, 1, kMaxGridExtent, true) && ok;
  return ok;
}

bool read_text(Reader& r, const json& root, Plan& plan) {
  const json* t = r.object_field(root, "", "text", false);
  if (t == nullptr) return true;
  r.only_keys(*t, "text", {"position", "tokens"});
  std::string position = "none";
  bool ok = true;
  if (r.read_string(*t, "text", "position", position, true)) {
    if (position == "none") plan.text.position = TextPosition::None;
    else if (position == "before") plan.text.position = TextPosition::Before;
    else if (position == "after") plan.text.position = TextPosition::After;
    else {
      r.fail("text.position", "expected one of \"none\", \"before\", \"after\"");
      ok = false;
    }
  } else {
    ok = false;
  }
  ok = r.read_int(*t, "text", "tokens", plan.text.tokens, 0, kMaxTextTokens, true) && ok;
  if (ok && (plan.text.position == TextPosition::None) != (plan.text.tokens == 0)) {
    r.fail("text.tokens", "expected 0 exactly when position is \"none\"");
    ok = false;
  }
  return ok;
}

bool read_tiling(Reader& r, const json& root, Plan& plan, bool grid_ok) {
  bool ok = true;
  const json* bs = r.field(root, "", "block_size", true);
  if (bs != nullptr) {
    const bool power_of_two = bs->is_number_integer() && bs->get<int64_t>() >= 16 &&
                              bs->get<int64_t>() <= 256 &&
                              (bs->get<int64_t>() & (bs->get<int64_t>() - 1)) == 0;
    if (!power_of_two) {
      r.fail("block_size", "expected one of 16, 32, 64, 128, 256");
      ok = false;
    } else {
      plan.block_size = bs->get<int>();
    }
  } else {
    ok = false;
  }
  std::vector<int> tile;
  if (r.read_int_list(root, "", "tile", tile, 3, 1, kMaxGridExtent, "3 positive integers (tf, th, tw)",
                      true)) {
    plan.tile = {tile[0], tile[1], tile[2]};
    if (grid_ok && (tile[0] > plan.grid.frames || tile[1] > plan.grid.height ||
                    tile[2] > plan.grid.width)) {
      r.fail("tile", "larger than the grid");
      ok = false;
    }
  } else {
    ok = false;
  }
  return ok;
}

void read_compensation(Reader& r, const json& root, Plan& plan) {
  std::string name;
  if (!r.read_string(root, "", "compensation", name, false))
    name = compensation_name(Compensation::None);
  if (name == compensation_name(Compensation::None))
    plan.compensation = Compensation::None;
  else if (name == compensation_name(Compensation::PooledKV))
    plan.compensation = Compensation::PooledKV;
  else if (name == compensation_name(Compensation::ResidualCache))
    plan.compensation = Compensation::ResidualCache;
  else
    r.fail("compensation", "expected \"none\", \"pooled_kv\" or \"residual_cache\", got \"" +
                               name + "\"");
  if (!plan.schedule.refresh_steps.empty() && plan.compensation != Compensation::ResidualCache)
    r.fail("schedule.refresh_steps", "refresh steps need compensation \"residual_cache\"");
}

void read_schedule(Reader& r, const json& root, Plan& plan) {
  const json* s = r.object_field(root, "", "schedule", false);
  if (s == nullptr) return;
  r.only_keys(*s, "schedule",
              {"total_steps", "warmup_steps", "dense_steps", "reselect_steps", "refresh_steps"});
  Schedule& sc = plan.schedule;
  r.read_int(*s, "schedule", "total_steps", sc.total_steps, 0, 1 << 20, false);
  const int max_step = sc.total_steps > 0 ? sc.total_steps - 1 : (1 << 20);
  const std::string steps_what =
      sc.total_steps > 0 ? "a list of step indices in [0, " + std::to_string(sc.total_steps) + ")"
                         : "a list of non-negative step indices";
  r.read_int(*s, "schedule", "warmup_steps", sc.warmup_steps, 0,
             sc.total_steps > 0 ? sc.total_steps : (1 << 20), false);
  r.read_int_list(*s, "schedule", "dense_steps", sc.dense_steps, -1, 0, max_step, steps_what,
                  false);
  r.read_int_list(*s, "schedule", "reselect_steps", sc.reselect_steps, -1, 0, max_step,
                  steps_what, false);
  r.read_int_list(*s, "schedule", "refresh_steps", sc.refresh_steps, -1, 0, max_step,
                  steps_what, false);
}

// A number >= min_value (and <= max_value); returns false (and reports) otherwise.
bool read_number(Reader& r, const json& object, const std::string& path, const char* key,
                 double& out, double min_value, double max_value, bool required) {
  const json* v = r.field(object, path, key, required);
  if (v == nullptr) return false;
  const double x = v->is_number() ? v->get<double>() : min_value - 1.0;
  if (!v->is_number() || !(x >= min_value && x <= max_value)) {
    r.fail(Reader::key_path(path, key), "expected a number in [" + format_number(min_value) +
                                            ", " + format_number(max_value) + "]");
    return false;
  }
  out = x;
  return true;
}

void read_calibration(Reader& r, const json& search, SearchInfo& info) {
  const std::string path = "search.calibration";
  const json* c = r.object_field(search, "search", "calibration", false);
  if (c == nullptr) return;
  r.only_keys(*c, path,
              {"prompts", "seeds", "steps", "video", "guidance", "target_psnr",
               "target_time_fraction", "psnr_mean", "psnr_worst", "time_fraction",
               "model_runs"});
  CalibrationInfo cal;
  if (const json* p = r.field(*c, path, "prompts", true)) {
    const bool ok = p->is_array() && !p->empty() &&
                    std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_string(); });
    if (!ok) r.fail(path + ".prompts", "expected a non-empty list of strings");
    else
      for (const json& x : *p) cal.prompts.push_back(x.get<std::string>());
  }
  r.read_int_list(*c, path, "seeds", cal.seeds, -1, 0, std::numeric_limits<int>::max(),
                  "a list of non-negative integers", true);
  r.read_int(*c, path, "steps", cal.steps, 1, 1 << 20, true);
  std::vector<int> video;
  if (r.read_int_list(*c, path, "video", video, 3, 1, 1 << 16,
                      "3 positive integers (frames, height, width)", true))
    cal.video = {video[0], video[1], video[2]};
  const double max_psnr = CalibrationInfo::kMaxPsnr;
  read_number(r, *c, path, "guidance", cal.guidance, 0.0, 1e6, true);
  read_number(r, *c, path, "target_psnr", cal.target_psnr, 0.0, max_psnr, false);
  r.read_fraction(*c, path, "target_time_fraction", cal.target_time_fraction, false, false);
  read_number(r, *c, path, "psnr_mean", cal.psnr_mean, -max_psnr, max_psnr, true);
  read_number(r, *c, path, "psnr_worst", cal.psnr_worst, -max_psnr, max_psnr, true);
  read_number(r, *c, path, "time_fraction", cal.time_fraction, 0.0, 1e6, true);
  r.read_int(*c, path, "model_runs", cal.model_runs, 0, 1 << 30, true);
  info.calibration = cal;
}

void read_search(Reader& r, const json& root, Plan& plan) {
  const json* s = r.object_field(root, "", "search", false);
  if (s == nullptr) return;
  r.only_keys(*s, "search",
              {"target_recall", "density_budget", "tool", "captures", "calibration"});
  SearchInfo info;
  r.read_fraction(*s, "search", "target_recall", info.target_recall, false, false);
  r.read_fraction(*s, "search", "density_budget", info.density_budget, false, false);
  r.read_string(*s, "search", "tool", info.tool, false);
  if (const json* c = r.field(*s, "search", "captures", false)) {
    const bool ok = c->is_array() && std::all_of(c->begin(), c->end(),
                                                 [](const json& x) { return x.is_string(); });
    if (!ok) r.fail("search.captures", "expected a list of strings");
    else
      for (const json& x : *c) info.captures.push_back(x.get<std::string>());
  }
  read_calibration(r, *s, info);
  plan.search = info;
}

// Geometry is known only when the grid, text and tiling were valid.
struct HeadContext {
  const TileGeometry* geometry = nullptr;
};

void read_window(Reader& r, const json& rule, const std::string& path, WindowRule& w,
                 const HeadContext& ctx) {
  const json* win = r.object_field(rule, path, "window", true);
  if (win == nullptr) return;
  const std::string wp = path + ".window";
  r.only_keys(*win, wp, {"groups", "sink_frames", "global_blocks"});
  const json* groups = r.field(*win, wp, "groups", true);
  if (groups != nullptr) {
    if (!groups->is_array() || groups->empty()) {
      r.fail(wp + ".groups", "expected a non-empty list of groups");
    } else {
      int previous = -1;
      for (size_t i = 0; i < groups->size(); ++i) {
        const json& g = (*groups)[i];
        const std::string gp = Reader::index_path(wp + ".groups", i);
        if (!g.is_object()) {
          r.fail(gp, "expected an object");
          continue;
        }
        r.only_keys(g, gp, {"max_frame_distance", "tiles"});
        WindowGroup group;
        if (r.read_int(g, gp, "max_frame_distance", group.max_frame_distance, 0, 1 << 16, true)) {
          if (group.max_frame_distance <= previous)
            r.fail(gp + ".max_frame_distance",
                   "expected groups in strictly increasing max_frame_distance");
          previous = group.max_frame_distance;
        }
        std::vector<int> tiles;
        if (r.read_int_list(g, gp, "tiles", tiles, 2, 1, 1 << 16, "2 positive integers", true)) {
          group.tiles_h = tiles[0];
          group.tiles_w = tiles[1];
          if (ctx.geometry != nullptr && (tiles[0] > ctx.geometry->tiles_h ||
                                          tiles[1] > ctx.geometry->tiles_w))
            r.fail(gp + ".tiles", "window of " + std::to_string(tiles[0]) + "x" +
                                      std::to_string(tiles[1]) +
                                      " tiles is larger than the grid's " +
                                      std::to_string(ctx.geometry->tiles_h) + "x" +
                                      std::to_string(ctx.geometry->tiles_w) + " tiles");
        }
        if (ctx.geometry != nullptr && group.max_frame_distance >= ctx.geometry->tiles_f &&
            i + 1 < groups->size())
          r.fail(gp + ".max_frame_distance", "already covers all " +
                                                 count_text(ctx.geometry->tiles_f, "tile frames") +
                                                 "; later groups can never apply");
        w.groups.push_back(group);
      }
    }
  }
  const int max_frame = ctx.geometry != nullptr ? ctx.geometry->tiles_f - 1 : (1 << 16);
  r.read_int_list(*win, wp, "sink_frames", w.sink_frames, -1, 0, max_frame,
                  "a list of tile-frame indices in [0, " + std::to_string(max_frame + 1) + ")",
                  false);
  const int max_block = ctx.geometry != nullptr ? ctx.geometry->video_blocks - 1 : kMaxBlocks - 1;
  r.read_int_list(*win, wp, "global_blocks", w.global_blocks, -1, 0, max_block,
                  "a list of video block indices in [0, " + std::to_string(max_block + 1) + ")",
                  false);
}

void read_blocks(Reader& r, const json& rule, const std::string& path, BlocksRule& b,
                 const HeadContext& ctx) {
  const json* blocks = r.object_field(rule, path, "blocks", true);
  if (blocks == nullptr) return;
  const std::string bp = path + ".blocks";
  r.only_keys(*blocks, bp, {"rows"});
  const json* rows = r.field(*blocks, bp, "rows", true);
  if (rows == nullptr) return;
  if (!rows->is_array()) {
    r.fail(bp + ".rows", "expected a list of key-block lists, one per video query block");
    return;
  }
  if (ctx.geometry != nullptr && int(rows->size()) != ctx.geometry->video_blocks) {
    r.fail(bp + ".rows", "expected " + count_text(ctx.geometry->video_blocks, "rows") +
                             " (one per video query block), got " +
                             std::to_string(rows->size()));
    return;
  }
  const int64_t limit = ctx.geometry != nullptr ? ctx.geometry->video_blocks : kMaxBlocks;
  b.rows.resize(rows->size());
  for (size_t q = 0; q < rows->size(); ++q) {
    const json& row = (*rows)[q];
    const std::string rp = Reader::index_path(bp + ".rows", q);
    bool ok = row.is_array();
    int64_t previous = -1;
    if (ok)
      for (const json& x : row) {
        ok = x.is_number_integer() && x.get<int64_t>() > previous && x.get<int64_t>() < limit;
        if (!ok) break;
        previous = x.get<int64_t>();
      }
    if (!ok) {
      r.fail(rp, "expected strictly increasing key-block indices in [0, " +
                     std::to_string(limit) + ")");
      continue;
    }
    for (const json& x : row) b.rows[q].push_back(x.get<int32_t>());
  }
}

void read_online(Reader& r, const json& rule, const std::string& path, OnlineRule& o) {
  const json* online = r.object_field(rule, path, "online", true);
  if (online == nullptr) return;
  const std::string op = path + ".online";
  r.only_keys(*online, op, {"recall", "min_density", "max_density"});
  r.read_fraction(*online, op, "recall", o.recall, false, true);
  r.read_fraction(*online, op, "min_density", o.min_density, true, false);
  r.read_fraction(*online, op, "max_density", o.max_density, false, false);
  if (o.min_density > o.max_density)
    r.fail(op, "min_density must not exceed max_density");
}

void read_head(Reader& r, const json& head, const std::string& path, HeadRule& rule,
               const HeadContext& ctx) {
  if (!head.is_object()) {
    r.fail(path, "expected an object");
    return;
  }
  r.only_keys(head, path, {"rule", "window", "blocks", "online", "stats"});
  std::string kind;
  if (!r.read_string(head, path, "rule", kind, true)) return;
  if (kind == "dense") rule.kind = RuleKind::Dense;
  else if (kind == "window") rule.kind = RuleKind::Window;
  else if (kind == "blocks") rule.kind = RuleKind::Blocks;
  else if (kind == "online") rule.kind = RuleKind::Online;
  else {
    r.fail(path + ".rule", "expected one of \"dense\", \"window\", \"blocks\", \"online\", got \"" +
                               kind + "\"");
    return;
  }
  for (const char* part : {"window", "blocks", "online"})
    if (head.contains(part) && kind != part)
      r.fail(path + "." + part, "only allowed with rule \"" + std::string(part) + "\"");
  if (rule.kind == RuleKind::Window) read_window(r, head, path, rule.window, ctx);
  if (rule.kind == RuleKind::Blocks) read_blocks(r, head, path, rule.blocks, ctx);
  if (rule.kind == RuleKind::Online) read_online(r, head, path, rule.online);
  if (const json* stats = r.object_field(head, path, "stats", false)) {
    const std::string sp = path + ".stats";
    r.only_keys(*stats, sp, {"recall", "density"});
    HeadStats s;
    r.read_fraction(*stats, sp, "recall", s.recall, true, false);
    r.read_fraction(*stats, sp, "density", s.density, true, false);
    rule.stats = s;
  }
}

void read_layers(Reader& r, const json& root, Plan& plan, const HeadContext& ctx) {
  const json* layers = r.field(root, "", "layers", true);
  if (layers == nullptr) return;
  if (!layers->is_array()) {
    r.fail("layers", "expected a list with one entry per layer");
    return;
  }
  if (plan.model.layers > 0 && int(layers->size()) != plan.model.layers)
    r.fail("layers", "expected " + count_text(plan.model.layers, "layers") +
                         " (model.layers), got " + std::to_string(layers->size()));
  plan.layers.resize(layers->size());
  for (size_t l = 0; l < layers->size(); ++l) {
    const std::string lp = Reader::index_path("layers", l);
    const json& layer = (*layers)[l];
    if (!layer.is_object()) {
      r.fail(lp, "expected an object with \"heads\"");
      continue;
    }
    r.only_keys(layer, lp, {"heads"});
    const json* heads = r.field(layer, lp, "heads", true);
    if (heads == nullptr) continue;
    if (!heads->is_array()) {
      r.fail(lp + ".heads", "expected a list with one rule per head");
      continue;
    }
    if (plan.model.heads > 0 && int(heads->size()) != plan.model.heads)
      r.fail(lp + ".heads", "expected " + count_text(plan.model.heads, "heads") +
                                " (model.heads), got " + std::to_string(heads->size()));
    plan.layers[l].resize(heads->size());
    for (size_t h = 0; h < heads->size(); ++h)
      read_head(r, (*heads)[h], Reader::index_path(lp + ".heads", h), plan.layers[l][h], ctx);
  }
}

// Tracks where the parser is (object keys and array indices) so that duplicate keys, control
// characters and syntax errors are reported with their JSON path.
class StrictJson {
 public:
  std::vector<std::string> errors;

  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        stack_.push_back(Frame{true});
        break;
      case json::parse_event_t::array_start:
        stack_.push_back(Frame{false});
        break;
      case json::parse_event_t::key: {
        Frame& top = stack_.back();
        top.key = parsed.get<std::string>();
        if (has_control(top.key, false))
          errors.push_back(path() + ": control character in a field name");
        else if (!top.keys.insert(top.key).second)
          errors.push_back(path() + ": duplicate key (given twice in one object)");
        break;
      }
      case json::parse_event_t::value:
        if (parsed.is_string() &&
            has_control(parsed.get_ref<const std::string&>(), path() == "description"))
          errors.push_back(path() + ": control character in a string");
        next_element();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack_.pop_back();
        next_element();
        break;
    }
    return true;
  }

  // The JSON path of the value being parsed, "(root)" outside every object and array.
  std::string path() const {
    std::string p;
    for (const Frame& f : stack_)
      p = f.object ? Reader::key_path(p, printable(f.key)) : Reader::index_path(p, f.index);
    return p.empty() ? "(root)" : p;
  }

 private:
  struct Frame {
    bool object = false;
    std::string key;          // objects: the key being read
    size_t index = 0;         // arrays: the element being read
    std::set<std::string> keys;
  };
  std::vector<Frame> stack_;

  void next_element() {
    if (!stack_.empty() && !stack_.back().object) ++stack_.back().index;
  }

  static bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

  static bool has_control(const std::string& s, bool free_text) {
    return std::any_of(s.begin(), s.end(), [&](char ch) {
      const unsigned char c = static_cast<unsigned char>(ch);
      return is_control(c) && !(free_text && (c == '\t' || c == '\n'));
    });
  }

  // Keys are echoed in messages: control characters are shown escaped, not written raw.
  static std::string printable(const std::string& s) {
    std::string out;
    for (char ch : s) {
      const unsigned char c = static_cast<unsigned char>(ch);
      if (!is_control(c)) {
        out += ch;
        continue;
      }
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      out += buf;
    }
    return out;
  }
};

}  // namespace

PlanError::PlanError(const std::string& source, std::vector<std::string> errors)
    : std::runtime_error(join_errors(source, errors)), errors_(std::move(errors)) {}

json parse_plan_json(const std::string& text, const std::string& source) {
  StrictJson strict;
  json root;
  try {
    root = json::parse(text, [&strict](int, json::parse_event_t event, json& parsed) {
      return strict.on_event(event, parsed);
    });
  } catch (const json::exception& e) {
    // Syntax errors and numbers out of range (1e999) alike: where the parser stopped.
    strict.errors.push_back(strict.path() + ": malformed JSON: " + e.what());
  }
  if (!strict.errors.empty()) throw PlanError(source, std::move(strict.errors));
  return root;
}

std::vector<std::string> parse_plan(const json& root, Plan& plan) {
  Reader r;
  plan = Plan{};
  if (!root.is_object()) return {"(root): expected a JSON object"};
  r.only_keys(root, "", {"format", "description", "model", "grid", "text", "block_size", "tile",
                         "schedule", "compensation", "search", "layers"});
  std::string format;
  if (r.read_string(root, "", "format", format, true) && format != Plan::kFormat)
    r.fail("format", "expected \"" + std::string(Plan::kFormat) + "\", got \"" + format + "\"");
  r.read_string(root, "", "description", plan.description, false);
  read_model(r, root, plan);
  const bool grid_ok = read_grid(r, root, plan);
  const bool text_ok = read_text(r, root, plan);
  const bool tiling_ok = read_tiling(r, root, plan, grid_ok);
  read_schedule(r, root, plan);
  read_compensation(r, root, plan);
  read_search(r, root, plan);

  HeadContext ctx;
  TileGeometry geometry;
  if (grid_ok && text_ok && tiling_ok) {
    try {
      geometry = make_tile_geometry(plan);
      ctx.geometry = &geometry;
    } catch (const std::invalid_argument& e) {
      r.errors.push_back(e.what());  // the message starts with the field it concerns
    }
  }
  read_layers(r, root, plan, ctx);
  return r.errors;
}

Plan plan_from_json_text(const std::string& text, const std::string& source) {
  const json root = parse_plan_json(text, source);
  Plan plan;
  std::vector<std::string> errors = parse_plan(root, plan);
  if (!errors.empty()) throw PlanError(source, std::move(errors));
  return plan;
}

std::string read_plan_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw std::runtime_error(path + ": is a directory, not a plan file");
  return read_text_file(path);
}

Plan load_plan(const std::string& path) { return plan_from_json_text(read_plan_file(path), path); }

std::vector<std::string> check_plan_matches_model(const Plan& plan, const ModelInfo& model) {
  std::vector<std::string> errors;
  if (plan.model.layers != model.layers)
    errors.push_back("plan has " + count_text(plan.model.layers, "layers") + ", model " +
                     model.id + " has " + std::to_string(model.layers));
  if (plan.model.heads != model.heads)
    errors.push_back("plan has " + count_text(plan.model.heads, "heads") + " per layer, model " +
                     model.id + " has " + std::to_string(model.heads));
  if (plan.model.head_dim != model.head_dim)
    errors.push_back("plan has head_dim " + std::to_string(plan.model.head_dim) + ", model " +
                     model.id + " has " + std::to_string(model.head_dim));
  return errors;
}

std::vector<std::string> check_plan_matches_grid(const Plan& plan, const Grid& grid,
                                                 const TextLayout& text) {
  std::vector<std::string> errors;
  const auto show = [](const Grid& g) {
    return std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" +
           std::to_string(g.width);
  };
  if (!(plan.grid == grid))
    errors.push_back("plan is for a " + show(plan.grid) + " token grid, the video has " +
                     show(grid));
  if (plan.text.tokens != text.tokens || plan.text.position != text.position)
    errors.push_back("plan expects " + std::to_string(plan.text.tokens) + " text tokens (" +
                     text_position_name(plan.text.position) + "), the sequence has " +
                     std::to_string(text.tokens) + " (" + text_position_name(text.position) +
                     ")");
  return errors;
}

}  // namespace sparseplan
