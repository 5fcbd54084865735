// The safetensors reader accepts good single-file and sharded checkpoints and rejects corrupt,
// truncated or inconsistent ones with an error naming the file and tensor.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/safetensors.h"
#include "model/text_encoder.h"
#include "scratch_dir.h"

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using namespace sparseplan;

namespace {

const std::string kModelDir = std::string(SPARSEPLAN_FIXTURES_DIR) + "/wan-mini";
const std::string kShard1 = "diffusion_pytorch_model-00001-of-00003.safetensors";

// A safetensors file with the given header text and `data_bytes` zero bytes of data.
std::string raw_file(const fs::path& dir, const std::string& header, size_t data_bytes,
                     uint64_t header_len_override = 0) {
  const std::string path = (dir / "t.safetensors").string();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len_override ? header_len_override : header.size();
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xFF));
  out << header << std::string(data_bytes, '\0');
  return path;
}

void copy_checkpoint(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(kModelDir))
    if (e.path().filename().string().rfind("diffusion_pytorch_model", 0) == 0)
      fs::copy_file(e.path(), dir / e.path().filename());
}

}  // namespace

TEST_CASE("written tensors read back with dtype, shape, values and metadata") {
  const ScratchDir scratch("safetensors_roundtrip");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "a.safetensors").string();
  const torch::Tensor f32 = torch::randn({2, 3});
  const torch::Tensor bf16 = torch::randn({4}).to(torch::kBFloat16);
  const torch::Tensor f16 = torch::randn({1, 2, 2}).to(torch::kHalf);
  write_safetensors(path, {{"f32", f32}, {"bf16", bf16}, {"f16", f16}}, {{"note", "hello"}});
  const SafetensorsFile file(path);
  CHECK(file.names() == std::vector<std::string>{"bf16", "f16", "f32"});
  CHECK(file.metadata().at("note") == "hello");
  CHECK(file.entry("bf16").dtype == "BF16");
  CHECK(torch::equal(file.load("f32"), f32));
  CHECK(torch::equal(file.load("bf16"), bf16));
  CHECK(torch::equal(file.load("f16"), f16));
  CHECK(torch::equal(to_float32(file.load("bf16")), bf16.to(torch::kFloat32)));
}

TEST_CASE("the sharded wan-mini checkpoint opens from its directory with every tensor") {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kModelDir);
  CHECK(ckpt.source().find("safetensors.index.json") != std::string::npos);
  CHECK(ckpt.names().size() == 12 + 8 * 27 + 3);
  const torch::Tensor w = ckpt.load("patch_embedding.weight");
  CHECK(w.scalar_type() == torch::kBFloat16);
  CHECK(w.sizes() == torch::IntArrayRef({384, 3, 1, 4, 4}));
  CHECK_THROWS_WITH(ckpt.load("no.such.tensor"), Catch::Contains("no.such.tensor"));
}

TEST_CASE("a truncated shard is reported with its file and tensor") {
  const ScratchDir scratch("safetensors_truncated");
  const fs::path& dir = scratch.path();
  copy_checkpoint(dir);
  fs::resize_file(dir / kShard1, fs::file_size(dir / kShard1) - 1000);
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(dir.string()),
                    Catch::Contains(kShard1) && Catch::Contains("tensor '") &&
                        Catch::Contains("truncated"));
}

TEST_CASE("a missing shard is reported naming the shard") {
  const ScratchDir scratch("safetensors_missing_shard");
  const fs::path& dir = scratch.path();
  copy_checkpoint(dir);
  fs::remove(dir / kShard1);
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(dir.string()),
                    Catch::Contains(kShard1) && Catch::Contains("missing"));
}

TEST_CASE("an index naming a tensor its shard does not hold is rejected") {
  const ScratchDir scratch("safetensors_bad_index");
  const fs::path& dir = scratch.path();
  const std::string shard = (dir / "s.safetensors").string();
  write_safetensors(shard, {{"a", torch::zeros({2})}});
  std::ofstream(dir / "m.safetensors.index.json")
      << R"({"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}})";
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(dir.string()),
                    Catch::Contains("'b'") && Catch::Contains("s.safetensors"));
}

TEST_CASE("a directory without a checkpoint is rejected") {
  const ScratchDir scratch("safetensors_empty");
  const fs::path& dir = scratch.path();
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(dir.string()),
                    Catch::Contains("no checkpoint found"));
}

TEST_CASE("a missing file is reported naming it") {
  CHECK_THROWS_WITH(SafetensorsFile("/nonexistent/x.safetensors"),
                    Catch::Contains("/nonexistent/x.safetensors") && Catch::Contains("not found"));
}

TEST_CASE("a file shorter than the header length field is rejected") {
  const ScratchDir scratch("safetensors_short");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "t.safetensors").string();
  std::ofstream(path) << "abc";
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("shorter"));
}

TEST_CASE("a header length past the end of the file is rejected") {
  const ScratchDir scratch("safetensors_header_len");
  const fs::path& dir = scratch.path();
  const std::string path = raw_file(dir, "{}", 0, 5000);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("header length 5000"));
}

TEST_CASE("an absurd header length is rejected") {
  const ScratchDir scratch("safetensors_header_huge");
  const fs::path& dir = scratch.path();
  const std::string path = raw_file(dir, "{}", 0, uint64_t(1) << 60);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("not plausible"));
}

TEST_CASE("a header that is not JSON is rejected") {
  const ScratchDir scratch("safetensors_not_json");
  const fs::path& dir = scratch.path();
  const std::string path = raw_file(dir, "{\"a\": [1, 2", 0);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("not valid JSON"));
}

TEST_CASE("data offsets that disagree with dtype and shape are rejected naming the tensor") {
  const ScratchDir scratch("safetensors_offsets");
  const fs::path& dir = scratch.path();
  const std::string path =
      raw_file(dir, R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24);
  CHECK_THROWS_WITH(SafetensorsFile(path),
                    Catch::Contains("'w'") && Catch::Contains("20 bytes") &&
                        Catch::Contains("need 24"));
}

TEST_CASE("data offsets past the end of the file are rejected naming the tensor") {
  const ScratchDir scratch("safetensors_past_end");
  const fs::path& dir = scratch.path();
  const std::string path =
      raw_file(dir, R"({"w": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}})", 10);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("'w'") && Catch::Contains("truncated"));
}

TEST_CASE("overlapping tensors are rejected") {
  const ScratchDir scratch("safetensors_overlap");
  const fs::path& dir = scratch.path();
  const std::string path = raw_file(
      dir,
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      12);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("overlap"));
}

TEST_CASE("an unsupported dtype is rejected naming it") {
  const ScratchDir scratch("safetensors_dtype");
  const fs::path& dir = scratch.path();
  const std::string path =
      raw_file(dir, R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4);
  CHECK_THROWS_WITH(SafetensorsFile(path),
                    Catch::Contains("'w'") && Catch::Contains("F8_E4M3"));
}

TEST_CASE("a negative dimension is rejected") {
  const ScratchDir scratch("safetensors_negative");
  const fs::path& dir = scratch.path();
  const std::string path =
      raw_file(dir, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
  CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains("negative"));
}

TEST_CASE("precomputed text embeddings load with an optional negative context") {
  const ScratchDir scratch("safetensors_context");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "ctx.safetensors").string();
  const torch::Tensor ctx = torch::randn({1, 5, 64});
  write_safetensors(path, {{"context", ctx.to(torch::kBFloat16)}});
  const PrecomputedContext loaded = load_precomputed_context(path, 64, 16);
  CHECK(loaded.context.sizes() == torch::IntArrayRef({5, 64}));
  CHECK(loaded.context.scalar_type() == torch::kFloat32);
  CHECK(!loaded.negative_context.defined());
  CHECK_THROWS_WITH(load_precomputed_context(path, 32, 16), Catch::Contains("'context'"));
  CHECK_THROWS_WITH(load_precomputed_context(path, 64, 4), Catch::Contains("L <= 4"));
}

TEST_CASE("a context file without a context tensor is rejected") {
  const ScratchDir scratch("safetensors_no_context");
  const fs::path& dir = scratch.path();
  const std::string path = (dir / "ctx.safetensors").string();
  write_safetensors(path, {{"other", torch::zeros({2})}});
  CHECK_THROWS_WITH(load_precomputed_context(path, 64, 16), Catch::Contains("'context'"));
}
