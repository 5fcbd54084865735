// Argument checks and dtype / head_dim / block-size dispatch for the CUDA kernels.
#include "kernels/attention_api.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/launch.h"
#include "kernels/video_tiles.cuh"

namespace sparseplan::cuda {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void check_common(const char* op, int batch, int heads, int kv_heads, int q_len, int kv_len,
                  int head_dim, float scale) {
  const std::string p = std::string(op) + ": ";
  require(batch >= 0 && heads > 0, p + "batch must be >= 0 and heads > 0");
  require(kv_heads > 0 && heads % kv_heads == 0,
          p + "kv_heads (" + std::to_string(kv_heads) + ") must divide heads (" +
              std::to_string(heads) + ")");
  require(q_len >= 0 && kv_len >= 0, p + "q_len and kv_len must be >= 0");
  require(head_dim == 64 || head_dim == 128,
          p + "head_dim must be 64 or 128, got " + std::to_string(head_dim));
  require(scale > 0.0f, p + "scale must be > 0");
}

void check_strides(const char* op, const char* name, int64_t row_stride, int64_t head_stride,
                   int64_t batch_stride, const void* ptr) {
  const std::string p = std::string(op) + ": " + name;
  require(ptr != nullptr, p + " is null");
  require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, p + " must be 16-byte aligned");
  require(row_stride % 8 == 0 && head_stride % 8 == 0 && batch_stride % 8 == 0,
          p + " strides must be multiples of 8 elements (16 bytes)");
}

void check_block(const char* op, const char* name, int block) {
  require(block == 64 || block == 128,
          std::string(op) + ": " + name + " must be 64 or 128, got " + std::to_string(block));
}

template <typename F>
void dispatch(DType dtype, int head_dim, F&& f) {
  if (dtype == DType::BF16) {
    if (head_dim == 64) f(__nv_bfloat16{}, std::integral_constant<int, 64>{});
    else f(__nv_bfloat16{}, std::integral_constant<int, 128>{});
  } else {
    if (head_dim == 64) f(__half{}, std::integral_constant<int, 64>{});
    else f(__half{}, std::integral_constant<int, 128>{});
  }
}

}  // namespace

namespace detail {
bool use_sm90_path() {
  int device = 0, major = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
             "reading the compute capability");
  const char* force = std::getenv("SPARSEPLAN_FORCE_SM80");
  return major == 9 && !(force != nullptr && std::string(force) == "1");
}
}  // namespace detail

void dense_attention_forward(const AttentionParams& p, DType dtype, cudaStream_t stream) {
  const char* op = "dense_attention";
  check_common(op, p.batch, p.heads, p.kv_heads, p.q_len, p.kv_len, p.head_dim, p.scale);
  check_strides(op, "q", p.q_row_stride, p.q_head_stride, p.q_batch_stride, p.q);
  check_strides(op, "k", p.k_row_stride, p.k_head_stride, p.k_batch_stride, p.k);
  check_strides(op, "v", p.v_row_stride, p.v_head_stride, p.v_batch_stride, p.v);
  check_strides(op, "out", p.o_row_stride, p.o_head_stride, p.o_batch_stride, p.out);
  require(p.lse != nullptr, std::string(op) + ": lse is null");
  require(p.row_offsets == nullptr, std::string(op) + ": row_offsets must be null");
  require(p.video.frames == 0,
          std::string(op) + ": the fused tile order (video) is block-sparse only");
  if (p.kv_block_valid != nullptr) check_block(op, "block_k", p.block_k);
  if (p.batch == 0 || p.q_len == 0) return;
  const bool sm90 = detail::use_sm90_path();
  dispatch(dtype, p.head_dim, [&](auto e, auto d) {
    if (sm90) detail::run_dense_sm90<decltype(e), decltype(d)::value>(p, stream);
    else detail::run_dense<decltype(e), decltype(d)::value>(p, stream);
  });
}

namespace {

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

// How 64-row query blocks run on Hopper (SPARSEPLAN_PAIR64, read at every call so one process
// can time each): 0 one 64-row tile per block (the path before pairing, kept for comparisons
// and as a way out); 1 two query blocks as one 128-row tile over the union of their key
// blocks, one key block per stage; 2 the same with two key blocks of the union per 128-key
// stage (the default with 128-key blocks); with 64-key blocks, 3 the rounds kernel in shared
// rounds (stage 2's walk on rings of single blocks), 4 the rounds kernel with each warpgroup
// computing two blocks of its own row per round where that fits its ring (pair_rounds.h), and
// 5 (the default) 2 with split stages first: a block only one query block lists beside one
// only the other lists, each warpgroup computing its own (PairRows::split). Measured on the
// H200 (bench/RESULTS.md, "64-token blocks"): the rounds kernel runs a round 8-16% slower than
// 2 runs a stage, so 4 beats 2 only on 3x3x3-tile windows and 3 and 4 are kept for
// comparisons; 5 runs a split stage in about 0.75 of a stage's time, within noise of 2 or
// faster on every mask measured ("split stages").
enum class Pairing { kOff, kBlocks, kTwoPerStage, kSharedRounds, kOwnRounds, kSplitStages };

Pairing pairing(const AttentionParams& p, int nkb) {
  if (p.block_q != 64 || p.num_cols < 0 || nkb > detail::kMaxPairKeyBlocks) return Pairing::kOff;
  const char* env = std::getenv("SPARSEPLAN_PAIR64");
  const std::string mode = env != nullptr ? env : "";
  if (mode == "0") return Pairing::kOff;
  if (mode == "1") return Pairing::kBlocks;
  if (mode == "3" && p.block_k == 64) return Pairing::kSharedRounds;
  if (mode == "4" && p.block_k == 64) return Pairing::kOwnRounds;
  if (mode == "2" || p.block_k != 64) return Pairing::kTwoPerStage;
  return Pairing::kSplitStages;
}

// The paired path's part of the workspace, after the work list and counter: the pairs' rows,
// the unions (num_cols entries), the rounds (num_cols + 2 x pairs entries of two ints), in the
// fused tile order the unions' tiles (num_cols int pairs), then the sort's scratch.
struct PairSpace {
  PairRows* rows;
  int32_t* unions;
  int32_t* rounds;
  int32_t* tiles;  // null outside the fused order
  uint8_t* sort_scratch;
};

// Byte offsets of PairSpace's parts; the last is the sort scratch's.
std::array<size_t, 5> pair_offsets(const AttentionParams& p, size_t pairs) {
  const size_t cols = size_t(p.num_cols);
  const size_t unions = align256(sizeof(PairRows) * pairs);
  const size_t rounds = unions + align256(sizeof(int32_t) * cols);
  const size_t tiles = rounds + align256(2 * sizeof(int32_t) * (cols + 2 * pairs));
  const size_t sort =
      tiles + (p.video.frames > 0 ? align256(2 * sizeof(int32_t) * cols) : size_t(0));
  return {0, unions, rounds, tiles, sort};
}

PairSpace carve_pair_space(uint8_t* base, const AttentionParams& p, size_t pairs) {
  const auto at = pair_offsets(p, pairs);
  return {reinterpret_cast<PairRows*>(base + at[0]), reinterpret_cast<int32_t*>(base + at[1]),
          reinterpret_cast<int32_t*>(base + at[2]),
          p.video.frames > 0 ? reinterpret_cast<int32_t*>(base + at[3]) : nullptr,
          base + at[4]};
}

size_t pair_workspace_bytes(const AttentionParams& p, int nqb, int nkb) {
  const size_t pairs = size_t(p.batch) * p.heads * ((nqb + 1) / 2);
  return pair_offsets(p, pairs)[4] + detail::pair_work_scratch_bytes(int(pairs), nkb);
}

// The fused tile order (VideoTiles): its tiles, and the call as the kernels run it, over the
// padded tile-order length (one block per tile) that block arithmetic wants; only addressing
// sees model order.
int64_t video_tiles(const VideoTiles& v) {
  if (v.frames <= 0 || v.height <= 0 || v.width <= 0 || v.tile_f <= 0 || v.tile_h <= 0 ||
      v.tile_w <= 0)
    return 0;  // refused by check_video
  return int64_t(tiles_along(v.frames, v.tile_f)) * tiles_along(v.height, v.tile_h) *
         tiles_along(v.width, v.tile_w);
}

AttentionParams in_tile_order(AttentionParams p) {
  p.q_len = p.kv_len = int(video_tiles(p.video) * p.block_q);
  return p;
}

void check_video(const char* op, const AttentionParams& p) {
  const VideoTiles& v = p.video;
  const std::string pre = std::string(op) + ": video ";
  const std::string grid = std::to_string(v.frames) + "x" + std::to_string(v.height) + "x" +
                           std::to_string(v.width);
  const std::string tile = std::to_string(v.tile_f) + "x" + std::to_string(v.tile_h) + "x" +
                           std::to_string(v.tile_w);
  require(v.frames > 0 && v.height > 0 && v.width > 0, pre + "grid must be positive, got " + grid);
  require(v.tile_f > 0 && v.tile_h > 0 && v.tile_w > 0, pre + "tile must be positive, got " + tile);
  require(p.block_q == p.block_k, pre + "tiles are blocks: block_q (" + std::to_string(p.block_q) +
                                      ") must equal block_k (" + std::to_string(p.block_k) + ")");
  require(int64_t(v.tile_f) * v.tile_h * v.tile_w <= p.block_q,
          pre + "tile " + tile + " must fit one block of " + std::to_string(p.block_q) + " tokens");
  const int64_t tokens = int64_t(v.frames) * v.height * v.width;
  require(p.q_len == tokens && p.kv_len == tokens,
          pre + "grid " + grid + " has " + std::to_string(tokens) +
              " tokens; q_len and kv_len must match, got " + std::to_string(p.q_len) + " and " +
              std::to_string(p.kv_len));
  require(v.frames < kMaxVideoExtent && v.height < kMaxVideoExtent && v.width < kMaxVideoExtent,
          pre + "grid " + grid + " is too large (each extent below " +
              std::to_string(kMaxVideoExtent) + ")");
  require(video_tiles(v) * p.block_q <= std::numeric_limits<int>::max(),
          pre + "grid " + grid + " in tiles " + tile + " is too long");
  require(p.q_head_stride == p.head_dim && p.k_head_stride == p.head_dim &&
              p.v_head_stride == p.head_dim,
          pre + "tile order needs q, k and v with adjacent heads (head stride = head_dim)");
  require(p.kv_block_valid == nullptr, pre + "tile order sets kv_block_valid itself: pass null");
  require(p.num_cols >= 0, pre + "tile order needs num_cols (the length of col_indices)");
  require(detail::use_sm90_path(), pre + "tile order runs on Hopper (sm_90) only");
}

size_t workspace_bytes(const AttentionParams& p) {
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  const size_t items = size_t(p.batch) * p.heads * nqb;
  // work list and counter, padded to 256 bytes, then the sort's scratch (or the pairs' data)
  size_t scratch = detail::work_list_scratch_bytes(int(items), nkb);
  if (p.block_q == 64 && p.num_cols >= 0 && nkb <= detail::kMaxPairKeyBlocks)
    scratch = std::max(scratch, pair_workspace_bytes(p, nqb, nkb));
  return align256(sizeof(int32_t) * (items + 1)) + scratch;
}

// The fused order's tables lead the workspace: each tile's span and valid tokens
// (video_tile_table), then each column's tile (video_column_tiles).
size_t video_tile_bytes(const AttentionParams& p) {
  return align256(sizeof(int32_t) * 3 * size_t(video_tiles(p.video)));
}
size_t video_table_bytes(const AttentionParams& p) {
  return video_tile_bytes(p) +
         align256(2 * sizeof(int32_t) * size_t(std::max<int64_t>(p.num_cols, 0)));
}

}  // namespace

size_t block_sparse_workspace_bytes(const AttentionParams& p) {
  if (p.video.frames == 0) return workspace_bytes(p);
  return video_table_bytes(p) + workspace_bytes(in_tile_order(p));
}

void block_sparse_attention_forward(AttentionParams p, DType dtype, void* workspace,
                                    cudaStream_t stream) {
  const char* op = "block_sparse_attention";
  check_common(op, p.batch, p.heads, p.kv_heads, p.q_len, p.kv_len, p.head_dim, p.scale);
  check_strides(op, "q", p.q_row_stride, p.q_head_stride, p.q_batch_stride, p.q);
  check_strides(op, "k", p.k_row_stride, p.k_head_stride, p.k_batch_stride, p.k);
  check_strides(op, "v", p.v_row_stride, p.v_head_stride, p.v_batch_stride, p.v);
  check_strides(op, "out", p.o_row_stride, p.o_head_stride, p.o_batch_stride, p.out);
  check_block(op, "block_q", p.block_q);
  check_block(op, "block_k", p.block_k);
  require(p.lse != nullptr, std::string(op) + ": lse is null");
  require(p.row_offsets != nullptr && p.col_indices != nullptr,
          std::string(op) + ": row_offsets and col_indices are required");
  require(workspace != nullptr, std::string(op) + ": workspace is null");
  if (p.video.frames != 0) check_video(op, p);
  if (p.batch == 0 || p.q_len == 0) return;
  int32_t* col_tiles = nullptr;  // the fused order's, filled in for the unpaired kernels only
  if (p.video.frames > 0) {
    const int tiles = int(video_tiles(p.video));
    int32_t* spans = static_cast<int32_t*>(workspace);  // 8-byte aligned for int2 reads
    int32_t* valid = spans + 2 * tiles;
    detail::video_tile_table(p.video, tiles, valid, spans, stream);
    col_tiles = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(workspace) + video_tile_bytes(p));
    workspace = static_cast<uint8_t*>(workspace) + video_table_bytes(p);
    // Where every tile fills its block, no key needs masking, and the producer's second warp
    // (which clears V rows past a block's keys) can stay out of the way (see produce).
    const VideoTiles& v = p.video;
    const bool full = v.frames % v.tile_f == 0 && v.height % v.tile_h == 0 &&
                      v.width % v.tile_w == 0 && v.tile_f * v.tile_h * v.tile_w == p.block_q;
    p = in_tile_order(p);
    p.kv_block_valid = full ? nullptr : valid;
    p.video_spans = spans;
  }
  const int nqb = (p.q_len + p.block_q - 1) / p.block_q;
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  int32_t* ws = static_cast<int32_t*>(workspace);
  const int items = p.batch * p.heads * nqb;
  uint8_t* scratch = reinterpret_cast<uint8_t*>(ws) + align256(sizeof(int32_t) * (size_t(items) + 1));
  const bool sm90 = detail::use_sm90_path();
  const Pairing pair_mode = sm90 ? pairing(p, nkb) : Pairing::kOff;
  if (pair_mode != Pairing::kOff) {
    AttentionParams pp = p;
    const int pairs = p.batch * p.heads * ((nqb + 1) / 2);
    const PairSpace space = carve_pair_space(scratch, p, size_t(pairs));
    const bool rounds = pair_mode == Pairing::kSharedRounds || pair_mode == Pairing::kOwnRounds;
    pp.num_work = pairs;
    pp.work_list = ws;
    pp.work_counter = ws + pairs;
    detail::check_cuda(cudaMemsetAsync(pp.work_counter, 0, sizeof(int32_t), stream),
                       "clearing the work counter");
    pp.pair_rows = space.rows;
    pp.pair_chunks = space.unions;
    pp.pair_tiles = space.tiles;
    int32_t* round_space = rounds ? space.rounds : nullptr;
    pp.pair_rounds = round_space;
    const int slots =
        pair_mode == Pairing::kOwnRounds ? detail::rounds_ring_slots(p.head_dim) : 0;
    detail::build_pair_work_list(p, nqb, nkb, ws, space.rows, space.unions, space.tiles,
                                 round_space, slots, pair_mode == Pairing::kSplitStages,
                                 space.sort_scratch, stream);
    using detail::PairKernel;
    const PairKernel kind = rounds                          ? PairKernel::kRounds
                            : pair_mode == Pairing::kBlocks ? PairKernel::kBlockPerStage
                                                            : PairKernel::kTwoPerStage;
    bool launched = false;
    dispatch(dtype, p.head_dim, [&](auto e, auto d) {
      launched = detail::run_block_sparse_pairs_sm90<decltype(e), decltype(d)::value>(
          pp, kind, stream);
    });
    if (launched) return;
  }
  if (col_tiles != nullptr) {
    detail::video_column_tiles(p.col_indices, p.num_cols, nkb, p.video_spans, col_tiles, stream);
    p.col_tiles = col_tiles;
  }
  p.num_work = items;
  p.work_list = ws;
  p.work_counter = ws + p.num_work;
  detail::check_cuda(cudaMemsetAsync(p.work_counter, 0, sizeof(int32_t), stream),
                     "clearing the work counter");
  detail::build_work_list(p.row_offsets, p.batch * p.heads, nqb, nkb, ws, scratch, stream);
  dispatch(dtype, p.head_dim, [&](auto e, auto d) {
    using E = decltype(e);
    constexpr int D = decltype(d)::value;
    if (sm90) {
      if (p.block_q == 64) detail::run_block_sparse_sm90<E, D, 1>(p, stream);
      else detail::run_block_sparse_sm90<E, D, 2>(p, stream);
    } else {
      if (p.block_q == 64) detail::run_block_sparse<E, D, 1>(p, stream);
      else detail::run_block_sparse<E, D, 2>(p, stream);
    }
  });
}

bool fused_tile_order_supported() { return detail::use_sm90_path(); }

void block_mass_forward(const BlockMassParams& p, DType dtype, cudaStream_t stream) {
  const char* op = "block_mass";
  check_common(op, p.batch, p.heads, p.kv_heads, p.q_len, p.kv_len, p.head_dim, p.scale);
  check_strides(op, "q", p.q_row_stride, p.q_head_stride, p.q_batch_stride, p.q);
  check_strides(op, "k", p.k_row_stride, p.k_head_stride, p.k_batch_stride, p.k);
  check_block(op, "block_q", p.block_q);
  check_block(op, "block_k", p.block_k);
  require(p.lse != nullptr && p.mass != nullptr, std::string(op) + ": lse and mass are required");
  if (p.batch == 0 || p.q_len == 0 || p.kv_len == 0) return;
  const bool sm90 = detail::use_sm90_path();
  dispatch(dtype, p.head_dim, [&](auto e, auto d) {
    using E = decltype(e);
    constexpr int D = decltype(d)::value;
    if (sm90) {
      if (p.block_q == 64) detail::run_block_mass_sm90<E, D, 1>(p, stream);
      else detail::run_block_mass_sm90<E, D, 2>(p, stream);
    } else {
      if (p.block_q == 64) detail::run_block_mass<E, D, 1>(p, stream);
      else detail::run_block_mass<E, D, 2>(p, stream);
    }
  });
}

}  // namespace sparseplan::cuda
