// sparseplan._core: the Python API over the C++ core (pybind11). Plans are loaded and checked by
// the C++ loader (its errors, with JSON paths, become sparseplan.PlanError), layouts are compiled
// by plan/block_layout.h, plan attention runs runtime/plan_backend.h and capture runs
// runtime/capture_backend.h into io/capture_file.h's writer, so a Python pipeline gets exactly
// what the `sparseplan` command computes. Heavy calls release the GIL.
#include <torch/extension.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "io/capture_file.h"
#include "plan/block_layout.h"
#include "plan/plan_loader.h"
#include "plan/query_pairs.h"
#include "plan/tile_geometry.h"
#include "runtime/block_mass_torch.h"
#include "runtime/capture_backend.h"
#include "runtime/plan_backend.h"
#include "runtime/tensor_text.h"

namespace py = pybind11;
using namespace sparseplan;

namespace {

using Triple = std::tuple<int, int, int>;

Grid to_grid(const Triple& t) { return Grid{std::get<0>(t), std::get<1>(t), std::get<2>(t)}; }
Triple from_grid(const Grid& g) { return {g.frames, g.height, g.width}; }
std::array<int, 3> to_tile(const Triple& t) { return {std::get<0>(t), std::get<1>(t), std::get<2>(t)}; }
Triple from_tile(const std::array<int, 3>& t) { return {t[0], t[1], t[2]}; }

std::string grid_text(const Grid& g) {
  return std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" + std::to_string(g.width);
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& e : items) text += (text.empty() ? "" : "; ") + e;
  return text;
}

std::string plan_repr(const Plan& plan) {
  std::map<std::string, int> kinds;
  for (const auto& layer : plan.layers)
    for (const auto& rule : layer) ++kinds[rule_kind_name(rule.kind)];
  std::string rules;
  for (const auto& [kind, count] : kinds)
    rules += (rules.empty() ? "" : ", ") + kind + ": " + std::to_string(count);
  return "Plan(model='" + plan.model.id + "', layers=" + std::to_string(plan.model.layers) +
         ", heads=" + std::to_string(plan.model.heads) +
         ", head_dim=" + std::to_string(plan.model.head_dim) + ", grid=" + grid_text(plan.grid) +
         ", tile=" + std::to_string(plan.tile[0]) + "x" + std::to_string(plan.tile[1]) + "x" +
         std::to_string(plan.tile[2]) + ", block_size=" + std::to_string(plan.block_size) +
         ", rules={" + rules + "})";
}

AttentionCall make_call(int layer, int step, int branch, double timestep, const Grid& grid) {
  AttentionCall call;
  call.layer = layer;
  call.step = step;
  call.branch = branch;
  call.timestep = timestep;
  call.grid = grid;
  return call;
}

// A layer's compiled layouts in the ops' format (runtime/torch_ops.h) on one device.
struct LayerLayouts {
  int layer = 0;
  std::vector<std::string> kinds;
  std::vector<double> densities;
  int num_blocks = 0;
  int block_size = 0;
  torch::Tensor row_offsets;     // [H, nqb + 1] int32, offsets into col_indices
  torch::Tensor col_indices;     // int32, head after head
  torch::Tensor kv_block_valid;  // [nb] int32
  torch::Tensor token_of_slot;   // [padded] int64, model token or -1
  torch::Tensor q_pair_order;    // [H, nqb] int32, plan/query_pairs.h
};

// Per head, the pair order of fewest stages (plan/query_pairs.h) as int32 [H, nqb].
torch::Tensor pair_orders(const std::vector<BlockLayout>& layouts,
                          const TileGeometry& geometry) {
  std::vector<int32_t> orders;
  for (const BlockLayout& l : layouts) {
    const std::vector<int32_t> order = pair_query_blocks(l, geometry);
    orders.insert(orders.end(), order.begin(), order.end());
  }
  return torch::tensor(orders, torch::TensorOptions().dtype(torch::kInt32))
      .view({int64_t(layouts.size()), geometry.total_blocks});
}

std::vector<int32_t> int32_values(const torch::Tensor& t, const char* name) {
  if (t.scalar_type() != torch::kInt32)
    throw std::invalid_argument(std::string(name) + " must be int32, got " +
                                std::string(c10::toString(t.scalar_type())));
  const torch::Tensor c = t.to(torch::kCPU).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

// The pair orders of CSR layouts over a video's padded tile order (no text): row_offsets
// [H, nqb + 1] into col_indices, head after head, as the torch ops take them.
torch::Tensor query_pair_order(const torch::Tensor& row_offsets,
                               const torch::Tensor& col_indices, const Triple& grid,
                               const Triple& tile, int block_size) {
  const TileGeometry geometry =
      make_tile_geometry(to_grid(grid), to_tile(tile), block_size, TextLayout{});
  const int nb = geometry.total_blocks;
  if (row_offsets.dim() != 2 || row_offsets.size(1) != nb + 1)
    throw std::invalid_argument("row_offsets must be [heads, " + std::to_string(nb + 1) +
                                "] for grid " + grid_text(to_grid(grid)) + ", got " +
                                shape_text(row_offsets));
  const std::vector<int32_t> offsets = int32_values(row_offsets, "row_offsets");
  const std::vector<int32_t> cols = int32_values(col_indices, "col_indices");
  std::vector<BlockLayout> layouts(size_t(row_offsets.size(0)));
  for (size_t h = 0; h < layouts.size(); ++h) {
    BlockLayout& l = layouts[h];
    l.num_q_blocks = l.num_k_blocks = nb;
    const int32_t* o = offsets.data() + h * size_t(nb + 1);
    for (int i = 0; i <= nb; ++i) {
      if (o[i] < (i == 0 ? 0 : o[i - 1]) || size_t(o[i]) > cols.size())
        throw std::invalid_argument("row_offsets of head " + std::to_string(h) +
                                    " must rise within col_indices' " +
                                    std::to_string(cols.size()) + " entries");
      l.row_offsets.push_back(o[i] - o[0]);
    }
    l.col_indices.assign(cols.begin() + o[0], cols.begin() + o[nb]);
  }
  return pair_orders(layouts, geometry);
}

LayerLayouts compile_layouts(const Plan& plan, int layer, const std::optional<Triple>& grid,
                             const std::string& device) {
  if (layer < 0 || layer >= int(plan.layers.size()))
    throw py::index_error("layer " + std::to_string(layer) + ": the plan has " +
                          std::to_string(plan.layers.size()) + " layers");
  if (grid) {
    const auto problems = check_plan_matches_grid(plan, to_grid(*grid), plan.text);
    if (!problems.empty())
      throw std::invalid_argument("grid " + grid_text(to_grid(*grid)) + ": " + join(problems));
  }
  const TileGeometry geometry = make_tile_geometry(plan);
  const TokenOrder order = make_token_order(geometry);
  const std::vector<BlockLayout> layouts = compile_layer_layouts(plan, geometry, layer);
  LayerLayouts out;
  out.layer = layer;
  out.num_blocks = geometry.total_blocks;
  out.block_size = geometry.block_size;
  std::vector<int32_t> offsets, cols;
  for (const BlockLayout& l : layouts) {
    const int32_t base = int32_t(cols.size());
    for (int i = 0; i + 1 < int(l.row_offsets.size()); ++i) offsets.push_back(base + l.row_offsets[size_t(i)]);
    offsets.push_back(base + l.row_offsets.back());
    cols.insert(cols.end(), l.col_indices.begin(), l.col_indices.end());
    out.kinds.push_back(rule_kind_name(l.kind));
    out.densities.push_back(l.density());
  }
  const auto i32 = torch::TensorOptions().dtype(torch::kInt32);
  const torch::Device dev(device);
  const int64_t heads = int64_t(layouts.size());
  out.row_offsets = torch::tensor(offsets, i32).view({heads, geometry.total_blocks + 1}).to(dev);
  out.col_indices = torch::tensor(cols, i32).to(dev);
  out.kv_block_valid = torch::tensor(order.block_valid, i32).to(dev);
  out.token_of_slot = torch::tensor(order.token_of_slot, i32).to(torch::kInt64).to(dev);
  out.q_pair_order = pair_orders(layouts, geometry).to(dev);
  return out;
}

// The writer and the backend that fills it, owned together (the backend holds a reference).
class Capture {
 public:
  Capture(const std::string& path, CaptureInfo info, bool full_lse, int64_t chunk_rows) {
    CaptureWriter::Options options;
    options.full_lse = full_lse;
    writer_ = std::make_unique<CaptureWriter>(path, info, options);
    backend_ = std::make_unique<CaptureBackend>(*writer_, chunk_rows);
  }
  CaptureWriter& writer() const { return *writer_; }
  CaptureBackend& backend() const { return *backend_; }

 private:
  std::unique_ptr<CaptureWriter> writer_;
  std::unique_ptr<CaptureBackend> backend_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "sparseplan's C++ core: plans, layouts, plan attention, block mass, capture files.";
  m.attr("__version__") = SPARSEPLAN_VERSION;

  // pybind11 3's pattern for a module's exception type: a function-local static py::exception
  // crashed raising it under Python 3.12 (the GPU machine), so it is stored once under the GIL.
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> plan_error;
  plan_error.call_once_and_store_result(
      [&]() { return py::exception<PlanError>(m, "PlanError", PyExc_ValueError); });
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const PlanError& e) {
      const py::object& type = plan_error.get_stored();
      py::object error = type(e.what());
      error.attr("errors") = py::cast(e.errors());
      py::set_error(type, error);
    }
  });

  py::class_<Plan, std::shared_ptr<Plan>>(m, "Plan",
      "A sparsity plan (docs/plan-format.md), checked field by field when loaded.")
      .def_static("load", &load_plan, py::arg("path"),
                  "Reads and validates a plan file; raises PlanError listing every problem "
                  "with its JSON path, OSError-like RuntimeError for a missing file.")
      .def_static("from_json", &plan_from_json_text, py::arg("text"), py::arg("source") = "plan",
                  "Parses and validates a plan from JSON text; errors name `source`.")
      .def_property_readonly("model_id", [](const Plan& p) { return p.model.id; })
      .def_property_readonly("num_layers", [](const Plan& p) { return p.model.layers; })
      .def_property_readonly("num_heads", [](const Plan& p) { return p.model.heads; })
      .def_property_readonly("head_dim", [](const Plan& p) { return p.model.head_dim; })
      .def_property_readonly("grid", [](const Plan& p) { return from_grid(p.grid); },
                             "Video token grid (frames, height, width).")
      .def_property_readonly("tile", [](const Plan& p) { return from_tile(p.tile); })
      .def_property_readonly("block_size", [](const Plan& p) { return p.block_size; })
      .def_property_readonly("text_position",
                             [](const Plan& p) { return text_position_name(p.text.position); })
      .def_property_readonly("text_tokens", [](const Plan& p) { return p.text.tokens; })
      .def_property_readonly("description", [](const Plan& p) { return p.description; })
      .def("rule_kind", [](const Plan& p, int layer, int head) {
             if (layer < 0 || layer >= int(p.layers.size()) || head < 0 ||
                 head >= int(p.layers[size_t(layer)].size()))
               throw py::index_error("(layer " + std::to_string(layer) + ", head " +
                                     std::to_string(head) + ") is not in the plan");
             return std::string(rule_kind_name(p.layers[size_t(layer)][size_t(head)].kind));
           }, py::arg("layer"), py::arg("head"),
           "'dense', 'window', 'blocks' or 'online'.")
      .def("check_model", [](const Plan& p, const std::string& model_id, int layers, int heads,
                             int head_dim) {
             return check_plan_matches_model(p, ModelInfo{model_id, layers, heads, head_dim});
           }, py::arg("model_id"), py::arg("layers"), py::arg("heads"), py::arg("head_dim"),
           "Problems that make the plan unusable for this model shape (empty when it fits).")
      .def("check_grid", [](const Plan& p, const Triple& grid) {
             return check_plan_matches_grid(p, to_grid(grid), p.text);
           }, py::arg("grid"),
           "Problems that make the plan unusable for this token grid (empty when it fits).")
      .def("__repr__", &plan_repr);

  py::class_<LayerLayouts>(m, "LayerLayouts",
      "One layer's block layouts in the torch ops' CSR format over the padded tile-order "
      "sequence: row_offsets [heads, blocks + 1] (offsets into col_indices, head after head), "
      "col_indices, kv_block_valid [blocks], token_of_slot [blocks * block_size] (model "
      "token of each slot, -1 for padding) and q_pair_order [heads, blocks] (which 64-token "
      "query blocks share a tile: the ops' q_pair_order).")
      .def_readonly("layer", &LayerLayouts::layer)
      .def_readonly("kinds", &LayerLayouts::kinds)
      .def_readonly("densities", &LayerLayouts::densities)
      .def_readonly("num_blocks", &LayerLayouts::num_blocks)
      .def_readonly("block_size", &LayerLayouts::block_size)
      .def_readonly("row_offsets", &LayerLayouts::row_offsets)
      .def_readonly("col_indices", &LayerLayouts::col_indices)
      .def_readonly("kv_block_valid", &LayerLayouts::kv_block_valid)
      .def_readonly("token_of_slot", &LayerLayouts::token_of_slot)
      .def_readonly("q_pair_order", &LayerLayouts::q_pair_order)
      .def("__repr__", [](const LayerLayouts& l) {
        std::string d;
        for (size_t h = 0; h < l.densities.size(); ++h) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "%s%s %.3f", h ? ", " : "", l.kinds[h].c_str(),
                        l.densities[h]);
          d += buf;
        }
        return "LayerLayouts(layer=" + std::to_string(l.layer) + ", blocks=" +
               std::to_string(l.num_blocks) + "x" + std::to_string(l.block_size) +
               ", device=" + l.row_offsets.device().str() + ", heads=[" + d + "])";
      });

  m.def("compile_layouts", &compile_layouts, py::arg("plan"), py::arg("layer"),
        py::arg("grid") = py::none(), py::arg("device") = "cpu",
        "Compiles one layer's layouts for the plan's grid onto `device`; a `grid` other than the "
        "plan's raises ValueError naming both.");

  m.def("query_pair_order", &query_pair_order, py::arg("row_offsets"), py::arg("col_indices"),
        py::arg("grid"), py::arg("tile"), py::arg("block_size") = 64,
        "Per head, the order of 64-token query blocks whose pairs share the fewest 128-row "
        "tiles' key stages (the ops' q_pair_order, int32 [heads, blocks]), for CSR layouts "
        "over a video grid's padded tile order; ValueError on layouts of another shape.");

  py::class_<PlanBackend>(m, "PlanAttention",
      "Runs a plan's attention for (layer, step, branch) on q, k, v [B, N, H, D] in model token "
      "order: reorders into tile order, block-sparse attention with the layer's layouts (online "
      "heads select at the schedule's reselect steps), reorders back. Steps the schedule runs "
      "dense (warm-up, dense_steps, step < 0) run dense attention.")
      .def(py::init([](const Plan& plan) { return std::make_unique<PlanBackend>(plan); }),
           py::arg("plan"))
      .def("__call__", [](PlanBackend& self, const torch::Tensor& q, const torch::Tensor& k,
                          const torch::Tensor& v, int layer, int step, int branch,
                          const Triple& grid, double timestep) {
             return self(make_call(layer, step, branch, timestep, to_grid(grid)), q, k, v);
           }, py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("layer"),
           py::arg("step"), py::arg("branch") = 0, py::arg("grid"), py::arg("timestep") = 0.0,
           py::call_guard<py::gil_scoped_release>(),
           "Returns float32 [B, N, H, D]; raises ValueError naming any mismatch of grid, heads, "
           "head_dim, token count or layer with the plan.")
      .def("runs_dense", [](const PlanBackend& self, int layer, int step, int branch) {
             return self.runs_dense(make_call(layer, step, branch, 0.0, self.plan().grid));
           }, py::arg("layer"), py::arg("step"), py::arg("branch") = 0)
      .def("check_model", [](const PlanBackend& self, const std::string& model_id, int layers,
                             int heads, int head_dim) {
             self.check_model(ModelInfo{model_id, layers, heads, head_dim});
           }, py::arg("model_id"), py::arg("layers"), py::arg("heads"), py::arg("head_dim"),
           "Raises ValueError listing every way the plan does not fit the model's shape.")
      .def_property_readonly("plan", [](const PlanBackend& self) { return self.plan(); })
      .def_property_readonly("stats", [](const PlanBackend& self) {
        const PlanRunStats& s = self.stats();
        py::dict d;
        d["dense_calls"] = s.dense_calls;
        d["sparse_calls"] = s.sparse_calls;
        d["reselections"] = s.reselections;
        d["mean_sparse_density"] = s.mean_sparse_density();
        d["mean_density"] = s.mean_density();
        return d;
      }, "Calls run so far: dense_calls, sparse_calls, reselections, mean densities.")
      .def("online_layouts", [](const PlanBackend& self, int layer, int branch) {
             py::list out;
             const auto* sel = self.online_selection(layer, branch);
             if (!sel) return out;
             for (const BlockLayout& l : sel->layouts)
               out.append(py::make_tuple(l.row_offsets, l.col_indices));
             return out;
           }, py::arg("layer"), py::arg("branch") = 0,
           "The current online selection of (layer, branch): per batch element and online head "
           "a (row_offsets, col_indices) pair of lists; empty before the first selection.")
      .def("__repr__", [](const PlanBackend& self) {
        return "PlanAttention(" + plan_repr(self.plan()) + ", " + format_plan_stats(self.stats()) + ")";
      });

  py::class_<AttentionWithMass>(m, "BlockMass",
      "Dense attention with its exact block mass: out [B, N, H, D], lse [B, H, N], and per tile "
      "shape mass [B, H, nb, nb] and LSE statistics [B, H, nb] in tile order.")
      .def_readonly("out", &AttentionWithMass::out)
      .def_readonly("lse", &AttentionWithMass::lse)
      .def_property_readonly("tiles", [](const AttentionWithMass& r) {
        py::list out;
        for (const auto& t : r.tiles) out.append(from_tile(t.tile));
        return out;
      })
      .def("mass", [](const AttentionWithMass& r, size_t i) { return r.tiles.at(i).mass; },
           py::arg("tile_index") = 0)
      .def("lse_stats", [](const AttentionWithMass& r, size_t i) {
             const auto& t = r.tiles.at(i);
             return py::make_tuple(t.lse_mean, t.lse_min, t.lse_max);
           }, py::arg("tile_index") = 0, "(mean, min, max) [B, H, nb] each.")
      .def("__repr__", [](const AttentionWithMass& r) {
        std::string tiles;
        for (const auto& t : r.tiles)
          tiles += (tiles.empty() ? "" : ", ") + std::to_string(t.tile[0]) + "x" +
                   std::to_string(t.tile[1]) + "x" + std::to_string(t.tile[2]) + " (" +
                   std::to_string(t.num_blocks) + " blocks)";
        return "BlockMass(batch=" + std::to_string(r.out.size(0)) + ", tokens=" +
               std::to_string(r.out.size(1)) + ", heads=" + std::to_string(r.out.size(2)) +
               ", tiles=[" + tiles + "])";
      });

  m.def("block_mass", [](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                         const Triple& grid, const std::vector<Triple>& tiles, int block_size,
                         int64_t chunk_rows, bool float64) {
          BlockMassOptions options;
          options.block_size = block_size;
          options.tiles.clear();
          for (const auto& t : tiles) options.tiles.push_back(to_tile(t));
          options.chunk_rows = chunk_rows;
          options.float64 = float64;
          const BlockMassComputer computer(to_grid(grid), TextLayout{}, options);
          return computer(q, k, v);
        }, py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("grid"),
        py::arg("tiles") = std::vector<Triple>{Triple{4, 4, 4}}, py::arg("block_size") = 64,
        py::arg("chunk_rows") = 0, py::arg("float64") = false,
        py::call_guard<py::gil_scoped_release>(),
        "Dense attention of q, k, v [B, N, H, D] (frame-major video tokens of `grid`) and its "
        "exact block attention mass in tile order for every tile shape, as `sparseplan capture` "
        "records it.");

  py::class_<Capture>(m, "CaptureSession",
      "A capture file being written (docs/capture-format.md): call it on every self-attention "
      "call; the calls at the captured steps, layers and branch record block mass and LSE "
      "statistics, every call returns dense attention. finish() checks that everything was "
      "written and renames the file into place; a session dropped unfinished leaves no file.")
      .def(py::init([](const std::string& path, const std::string& model_id, int layers,
                       int heads, int head_dim, const Triple& grid,
                       const std::vector<Triple>& tiles, int block_size,
                       const std::vector<std::string>& prompts, const std::vector<int64_t>& seeds,
                       const std::vector<int>& steps, const std::vector<double>& timesteps,
                       const std::vector<int>& capture_layers, int branch,
                       const std::string& model_config_json, const std::string& sampler_json,
                       bool full_lse, int64_t chunk_rows) {
             CaptureInfo info;
             info.model = ModelInfo{model_id, layers, heads, head_dim};
             info.grid = to_grid(grid);
             for (const auto& t : tiles) info.tiles.push_back(to_tile(t));
             info.block_size = block_size;
             info.num_prompts = int(prompts.size());
             info.prompts = prompts;
             info.seeds = seeds;
             info.steps = steps;
             info.timesteps = timesteps;
             info.layers = capture_layers;
             info.branch = branch;
             info.model_config_json = model_config_json;
             info.sampler_json = sampler_json;
             return std::make_unique<Capture>(path, info, full_lse, chunk_rows);
           }),
           py::arg("path"), py::kw_only(), py::arg("model_id"), py::arg("layers"),
           py::arg("heads"), py::arg("head_dim"), py::arg("grid"), py::arg("tiles"),
           py::arg("block_size"), py::arg("prompts"), py::arg("seeds"), py::arg("steps"),
           py::arg("timesteps"), py::arg("capture_layers"), py::arg("branch"),
           py::arg("model_config_json") = "{}", py::arg("sampler_json") = "{}",
           py::arg("full_lse") = false, py::arg("chunk_rows") = 0)
      .def("set_prompt", [](Capture& c, int p) { c.backend().set_prompt(p); }, py::arg("prompt"),
           "The prompt whose sampling runs next (batch element b records prompt + b).")
      .def("__call__", [](Capture& c, const torch::Tensor& q, const torch::Tensor& k,
                          const torch::Tensor& v, int layer, int step, int branch,
                          const Triple& grid, double timestep) {
             return c.backend()(make_call(layer, step, branch, timestep, to_grid(grid)), q, k, v);
           }, py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("layer"),
           py::arg("step"), py::arg("branch") = 0, py::arg("grid"), py::arg("timestep") = 0.0,
           py::call_guard<py::gil_scoped_release>())
      .def("captures", [](const Capture& c, int layer, int step, int branch) {
             return c.backend().captures(make_call(layer, step, branch, 0.0, Grid{}));
           }, py::arg("layer"), py::arg("step"), py::arg("branch") = 0)
      .def_property_readonly("captured_calls",
                             [](Capture& c) { return c.backend().captured_calls(); })
      .def_property_readonly("calls_per_prompt",
                             [](Capture& c) { return c.backend().calls_per_prompt(); })
      .def_property_readonly("finished", [](Capture& c) { return c.writer().finished(); })
      .def("finish", [](Capture& c) { c.writer().finish(); },
           py::call_guard<py::gil_scoped_release>())
      .def("__repr__", [](Capture& c) {
        const CaptureInfo& i = c.writer().info();
        return "CaptureSession(model='" + i.model.id + "', grid=" + grid_text(i.grid) +
               ", prompts=" + std::to_string(i.num_prompts) + ", steps=" +
               std::to_string(i.steps.size()) + ", layers=" + std::to_string(i.layers.size()) +
               ", captured_calls=" + std::to_string(c.backend().captured_calls()) +
               (c.writer().finished() ? ", finished)" : ")");
      });
}
