#include "cli/fidelity_setup.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "base/atomic_file.h"
#include "io/video_writer.h"
#include "model/text_encoder.h"
#include "model/wan_config.h"

namespace sparseplan::cli {
namespace {

namespace fs = std::filesystem;

std::string default_model_dir() {
  if (const char* env = std::getenv("SPARSEPLAN_MODEL"); env && *env) return env;
  return std::string(SPARSEPLAN_SOURCE_DIR) + "/../shared/fixtures/wan-mini";
}


std::string num(double v, const char* format = "%.2f") {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

struct Column {
  const char* title;
  std::string (*cell)(const EvaluationRow&);
};

const std::vector<Column>& columns() {
  static const std::vector<Column> c = {
      {"plan", [](const EvaluationRow& r) { return r.name; }},
      {"warm-up", [](const EvaluationRow& r) { return r.warmup < 0 ? std::string("-") : std::to_string(r.warmup); }},
      {"density", [](const EvaluationRow& r) { return num(r.result.density(), "%.3f"); }},
      {"PSNR mean dB", [](const EvaluationRow& r) { return num(r.result.psnr_mean); }},
      {"PSNR worst dB", [](const EvaluationRow& r) { return num(r.result.psnr_worst); }},
      {"SSIM mean", [](const EvaluationRow& r) { return num(r.result.ssim_mean, "%.4f"); }},
      {"SSIM worst", [](const EvaluationRow& r) { return num(r.result.ssim_worst, "%.4f"); }},
      {"rel. L2", [](const EvaluationRow& r) { return num(r.result.rel_l2_mean, "%.2e"); }},
      {"predicted ms", [](const EvaluationRow& r) { return num(r.result.predicted_ms, "%.3f"); }},
      {"time / dense", [](const EvaluationRow& r) { return num(r.time_fraction, "%.3f"); }},
      {"measured ms", [](const EvaluationRow& r) { return num(r.result.measured_ms, "%.1f"); }},
  };
  return c;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

std::vector<std::string> read_prompts_file(const std::string& path) {
  std::vector<std::string> prompts;
  std::stringstream ss(read_text_file(path));
  std::string line;
  while (std::getline(ss, line)) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const size_t e = line.find_last_not_of(" \t\r");
    prompts.push_back(line.substr(b, e - b + 1));
  }
  if (prompts.empty()) throw std::invalid_argument("--prompts " + path + ": no prompt in the file");
  return prompts;
}

void add_fidelity_options(CLI::App* sub, FidelitySettings& s) {
  s.model = default_model_dir();
  sub->add_option("--model", s.model, "Checkpoint directory; default wan-mini or $SPARSEPLAN_MODEL")
      ->capture_default_str();
  sub->add_option("--prompts", s.prompts_file, "File with one prompt per line (# comments)")
      ->required();
  sub->add_option("--seeds", s.seeds, "Noise seeds, comma-separated: every prompt runs with each")
      ->capture_default_str();
  sub->add_option("--steps", s.steps, "Denoising steps")->capture_default_str();
  sub->add_option("--video", s.video, "Video frames,height,width in pixels")->capture_default_str();
  sub->add_option("--guidance", s.guidance, "Classifier-free guidance scale")->capture_default_str();
  sub->add_option("--shift", s.shift, "Timestep shift")->capture_default_str();
  sub->add_option("--device", s.device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_flag("--quiet", s.quiet, "No progress output");
}

std::vector<int> parse_count_list(const std::string& text, const std::string& option) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      throw std::invalid_argument(option + ": '" + text +
                                  "' is not a comma-separated list of non-negative integers");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(option + ": empty list");
  return out;
}

torch::Device fidelity_device(const std::string& name) {
  const torch::Device device = name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: no CUDA device available");
  return device;
}

FidelitySetup make_fidelity_setup(const FidelitySettings& s) {
  FidelitySetup out;
  if (!fs::is_directory(s.model))
    throw std::invalid_argument("--model " + s.model + ": not a directory");
  if (s.steps < 1) throw std::invalid_argument("--steps must be >= 1");
  if (!(s.guidance >= 0) || !std::isfinite(s.guidance))
    throw std::invalid_argument("--guidance must be >= 0");
  if (!(s.shift > 0) || !std::isfinite(s.shift)) throw std::invalid_argument("--shift must be > 0");
  const std::vector<int> video = parse_count_list(s.video, "--video");
  if (video.size() != 3 || video[0] < 1 || video[1] < 1 || video[2] < 1)
    throw std::invalid_argument("--video: expected frames,height,width (positive), got '" +
                                s.video + "'");
  out.video = {video[0], video[1], video[2]};
  out.seeds = parse_count_list(s.seeds, "--seeds");
  out.prompts = read_prompts_file(s.prompts_file);

  const std::string config_path = (fs::path(s.model) / "config.json").string();
  const WanConfig config = load_wan_config(config_path);
  if (config.in_dim != 3 || config.out_dim != 3)
    throw std::invalid_argument("--model " + s.model +
                                ": only pixel-space models (3 channels) can be compared as video");
  out.grid = token_grid(config, out.video[0], out.video[1], out.video[2]);
  fs::path mp(s.model);
  if (mp.filename().empty()) mp = mp.parent_path();
  out.model_info = ModelInfo{mp.filename().string(), config.num_layers, config.num_heads,
                             config.head_dim()};
  const std::string encoder_path = (fs::path(s.model) / "text_encoder.safetensors").string();
  if (!fs::exists(encoder_path))
    throw std::invalid_argument("--model " + s.model + ": no text_encoder.safetensors");
  const ToyTextEncoder encoder(encoder_path, config.text_len);
  std::vector<FidelityCase> cases;
  for (const std::string& p : out.prompts) {
    torch::Tensor context;
    try {
      context = encoder.encode(p);
    } catch (const std::exception& e) {
      throw std::invalid_argument("--prompts " + s.prompts_file + ": " + e.what());
    }
    for (int seed : out.seeds) cases.push_back({p, context, uint64_t(seed)});
  }
  const torch::Device device = fidelity_device(s.device);
  out.model = std::make_unique<WanModel>(load_wan_model(s.model, device, torch::kFloat32));
  SampleOptions so;
  so.frames = out.video[0];
  so.height = out.video[1];
  so.width = out.video[2];
  so.steps = s.steps;
  so.shift = s.shift;
  so.guidance = s.guidance;
  out.runner = std::make_unique<FidelityRunner>(*out.model, so, std::move(cases));
  out.runner->model_name = out.model_info.id;
  return out;
}

std::string evaluation_text_table(const std::vector<EvaluationRow>& rows) {
  const auto& cols = columns();
  std::vector<size_t> width(cols.size());
  for (size_t c = 0; c < cols.size(); ++c) {
    width[c] = std::string(cols[c].title).size();
    for (const EvaluationRow& r : rows) width[c] = std::max(width[c], cols[c].cell(r).size());
  }
  std::string out;
  const auto line = [&](const std::function<std::string(size_t)>& cell) {
    for (size_t c = 0; c < cols.size(); ++c) {
      std::string v = cell(c);
      v.resize(std::max(v.size(), width[c]), ' ');
      out += (c ? "  " : "") + v;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\n";
  };
  line([&](size_t c) { return std::string(cols[c].title); });
  for (const EvaluationRow& r : rows) line([&](size_t c) { return cols[c].cell(r); });
  return out;
}

void write_evaluation_tables(const std::string& dir, const std::vector<EvaluationRow>& rows,
                             const std::string& settings_text) {
  const auto& cols = columns();
  const fs::path d(dir);
  write_text_atomically((d / "results.txt").string(),
                        settings_text + "\n\n" + evaluation_text_table(rows));

  std::string md = settings_text + "\n\n|";
  for (const Column& c : cols) md += std::string(" ") + c.title + " |";
  md += "\n|";
  for (size_t c = 0; c < cols.size(); ++c) md += "---|";
  md += "\n";
  for (const EvaluationRow& r : rows) {
    md += "|";
    for (const Column& c : cols) md += " " + c.cell(r) + " |";
    md += "\n";
  }
  write_text_atomically((d / "results.md").string(), md);

  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sparseplan evaluate</title>"
      "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid "
      "#999;padding:2px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>\n"
      "<h1>Plans against dense sampling</h1>\n<p>" +
      html_escape(settings_text) + "</p>\n<table>\n<tr>";
  for (const Column& c : cols) html += std::string("<th>") + c.title + "</th>";
  html += "<th>dense | plan</th></tr>\n";
  for (const EvaluationRow& r : rows) {
    html += "<tr>";
    for (const Column& c : cols) html += "<td>" + html_escape(c.cell(r)) + "</td>";
    html += r.kind == "dense" ? "<td></td>"
                              : "<td><img src=\"compare-" + html_escape(r.name) + ".gif\"></td>";
    html += "</tr>\n";
  }
  html += "</table>\n</body></html>\n";
  write_text_atomically((d / "results.html").string(), html);

  nlohmann::ordered_json j;
  j["settings"] = settings_text;
  j["columns"] = {"plan", "density", "psnr_mean", "psnr_worst", "ssim", "rel_l2",
                  "predicted_ms", "measured_ms"};
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  std::string csv = "plan,density,psnr_mean,psnr_worst,ssim,rel_l2,predicted_ms,measured_ms,"
                    "ssim_worst,time_fraction,warmup,kind\n";
  for (const EvaluationRow& r : rows) {
    const FidelityResult& f = r.result;
    nlohmann::ordered_json row;
    row["plan"] = r.name;
    row["density"] = f.density();
    row["psnr_mean"] = finite_or_null(f.psnr_mean);
    row["psnr_worst"] = finite_or_null(f.psnr_worst);
    row["ssim"] = f.ssim_mean;
    row["rel_l2"] = f.rel_l2_mean;
    row["predicted_ms"] = f.predicted_ms;
    row["measured_ms"] = f.measured_ms;
    row["ssim_worst"] = f.ssim_worst;
    row["time_fraction"] = r.time_fraction;
    row["warmup"] = r.warmup;
    row["kind"] = r.kind;
    list.push_back(row);
    csv += r.name + "," + num(f.density(), "%.6f") + "," + num(f.psnr_mean, "%.4f") + "," +
           num(f.psnr_worst, "%.4f") + "," + num(f.ssim_mean, "%.6f") + "," +
           num(f.rel_l2_mean, "%.6e") + "," + num(f.predicted_ms, "%.6f") + "," +
           num(f.measured_ms, "%.3f") + "," + num(f.ssim_worst, "%.6f") + "," +
           num(r.time_fraction, "%.6f") + "," + std::to_string(r.warmup) + "," + r.kind + "\n";
  }
  j["rows"] = list;
  write_text_atomically((d / "results.json").string(), j.dump(2) + "\n");
  write_text_atomically((d / "results.csv").string(), csv);
}

void write_side_by_side(const std::string& stem, const torch::Tensor& dense,
                        const torch::Tensor& plan) {
  const VideoFrames a = frames_from_video(dense);
  const VideoFrames b = frames_from_video(plan);
  constexpr int kGap = 2;
  VideoFrames out;
  out.frames = a.frames;
  out.height = a.height;
  out.width = a.width * 2 + kGap;
  out.rgb.assign(size_t(out.frames) * out.height * out.width * 3, 255);
  for (int f = 0; f < a.frames; ++f)
    for (int y = 0; y < a.height; ++y)
      for (int x = 0; x < a.width; ++x)
        for (int c = 0; c < 3; ++c) {
          const size_t src = ((size_t(f) * a.height + y) * a.width + x) * 3 + c;
          const size_t row = (size_t(f) * out.height + y) * out.width;
          out.rgb[(row + x) * 3 + c] = a.rgb[src];
          out.rgb[(row + a.width + kGap + x) * 3 + c] = b.rgb[src];
        }
  const int scale = std::max(1, 256 / std::max(1, out.width));
  write_gif(stem + ".gif", out, 8, scale);
  write_contact_sheet(stem + ".png", out, 4, std::max(1, scale / 2));
}

}  // namespace sparseplan::cli
