// CUDA kernels against their CPU references: random bf16/fp16 inputs (never zeros), outputs
// poisoned with NaN before each run, relative L2 error < 1e-2, NaN never passes. Every test
// skips with a printed reason where no GPU (or no CUDA build) exists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention_reference.h"
#include "kernels/block_select_reference.h"

#ifdef SPARSEPLAN_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "kernels/attention_api.h"
#include "kernels/launch.h"
#endif

namespace {

#ifndef SPARSEPLAN_WITH_CUDA
#define SKIP_WITHOUT_GPU()                                           \
  do {                                                               \
    WARN("skipped: built without CUDA (SPARSEPLAN_WITH_CUDA unset)"); \
    return;                                                          \
  } while (0)
#else
bool gpu_available(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    why = std::string("skipped: no usable GPU (") + cudaGetErrorString(err) + ")";
    return false;
  }
  if (n == 0) {
    why = "skipped: no GPU on this machine";
    return false;
  }
  return true;
}
#define SKIP_WITHOUT_GPU()               \
  do {                                   \
    std::string why_;                    \
    if (!gpu_available(why_)) {          \
      WARN(why_);                        \
      return;                            \
    }                                    \
  } while (0)

using sparseplan::cuda::DType;

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) FAIL(std::string(what) + ": " + cudaGetErrorString(e));
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<size_t>(count, 1) * sizeof(T)),
            "cudaMalloc");
  }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    cuda_ok(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            "upload");
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    cuda_ok(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return host;
  }
  void poison() { cuda_ok(cudaMemset(ptr, 0xff, n * sizeof(T)), "poison"); }  // NaN bytes
};

// Half-precision storage for either dtype: bits on the device, the rounded floats on the host.
struct HalfTensor {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};

uint16_t to_bits(float x, DType dt) {
  uint16_t b;
  if (dt == DType::BF16) {
    const __nv_bfloat16 h = __float2bfloat16(x);
    std::memcpy(&b, &h, 2);
  } else {
    const __half h = __float2half(x);
    std::memcpy(&b, &h, 2);
  }
  return b;
}
float from_bits(uint16_t b, DType dt) {
  if (dt == DType::BF16) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = b;
  return __half2float(__half(r));
}

HalfTensor random_half(size_t n, DType dt, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  HalfTensor t;
  t.bits.resize(n);
  t.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float x = dist(rng);
    if (x == 0.0f) x = 1e-3f;  // never zeros
    t.bits[i] = to_bits(x, dt);
    t.values[i] = from_bits(t.bits[i], dt);
  }
  return t;
}

// One head of a [B, N, H, D] tensor as a contiguous [N, D] float array.
std::vector<float> head_of(const std::vector<float>& x, int B, int N, int H, int D, int b, int h) {
  (void)B;
  std::vector<float> out(size_t(N) * D);
  for (int n = 0; n < N; ++n)
    for (int d = 0; d < D; ++d)
      out[size_t(n) * D + d] = x[((size_t(b) * N + n) * H + h) * D + d];
  return out;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

struct Problem {
  int B, N, H, D;
  DType dtype;
  HalfTensor q, k, v;
};

Problem make_problem(int B, int N, int H, int D, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p{B, N, H, D, dt, {}, {}, {}};
  const size_t n = size_t(B) * N * H * D;
  p.q = random_half(n, dt, rng);
  p.k = random_half(n, dt, rng);
  p.v = random_half(n, dt, rng);
  return p;
}

sparseplan::cuda::AttentionParams params_for(const Problem& pr, const void* q, const void* k,
                                             const void* v, void* out, float* lse) {
  sparseplan::cuda::AttentionParams p;
  p.q = q, p.k = k, p.v = v, p.out = out, p.lse = lse;
  const int64_t row = int64_t(pr.H) * pr.D, batch = int64_t(pr.N) * row;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = batch;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = row;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = pr.D;
  p.batch = pr.B, p.heads = pr.H, p.kv_heads = pr.H;
  p.q_len = pr.N, p.kv_len = pr.N, p.head_dim = pr.D;
  p.scale = 1.0f / std::sqrt(float(pr.D));
  return p;
}

// Compares every (batch, head) of the kernel's output and LSE with `reference`, which fills
// one head's [N, D] output and [N] LSE.
template <typename Ref>
void check_against(const Problem& pr, const std::vector<uint16_t>& out_bits,
                   const std::vector<float>& lse, Ref&& reference) {
  for (int b = 0; b < pr.B; ++b)
    for (int h = 0; h < pr.H; ++h) {
      std::vector<float> got(size_t(pr.N) * pr.D), want(got.size()), want_lse(size_t(pr.N));
      for (int n = 0; n < pr.N; ++n)
        for (int d = 0; d < pr.D; ++d)
          got[size_t(n) * pr.D + d] =
              from_bits(out_bits[((size_t(b) * pr.N + n) * pr.H + h) * pr.D + d], pr.dtype);
      reference(b, h, want.data(), want_lse.data());
      INFO("batch " << b << " head " << h);
      CHECK(rel_l2(got, want) < 1e-2);
      double worst = 0.0;
      for (int n = 0; n < pr.N; ++n) {
        const float g = lse[(size_t(b) * pr.H + h) * pr.N + n], w = want_lse[size_t(n)];
        if (std::isinf(w)) {
          CHECK(g == w);
          std::vector<float> row(got.begin() + size_t(n) * pr.D,
                                 got.begin() + size_t(n + 1) * pr.D);
          CHECK(std::all_of(row.begin(), row.end(), [](float x) { return x == 0.0f; }));
        } else {
          worst = std::isfinite(g) ? std::max(worst, double(std::fabs(g - w))) : 1e30;
        }
      }
      CHECK(worst < 1e-2);
    }
}

struct Csr {
  std::vector<int32_t> row_offsets;  // [B, H, nqb + 1], global offsets
  std::vector<int32_t> cols;
};

// Per head: density from `densities` (cycled), sorted random key blocks; density < 0 makes
// every other row empty.
Csr random_layout(int B, int H, int nqb, int nkb, const std::vector<double>& densities,
                  std::mt19937& rng) {
  Csr c;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const double d = densities[size_t(b * H + h) % densities.size()];
      for (int qb = 0; qb < nqb; ++qb) {
        c.row_offsets.push_back(int32_t(c.cols.size()));
        if (d < 0 && qb % 2 == 0) continue;
        for (int kb = 0; kb < nkb; ++kb)
          if (u(rng) < std::fabs(d)) c.cols.push_back(kb);
      }
      c.row_offsets.push_back(int32_t(c.cols.size()));
    }
  return c;
}

void run_dense_case(int B, int N, int H, int D, DType dt) {
  const Problem pr = make_problem(B, N, H, D, dt, 1234u + N + D);
  DeviceBuffer<uint16_t> q(pr.q.bits), k(pr.k.bits), v(pr.v.bits), out(pr.q.bits.size());
  DeviceBuffer<float> lse(size_t(B) * H * N);
  out.poison();
  lse.poison();
  auto p = params_for(pr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr);
  sparseplan::cuda::dense_attention_forward(p, dt, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "dense attention");
  sparseplan::ref::HeadShape shape{N, N, D, p.scale};
  check_against(pr, out.download(), lse.download(), [&](int b, int h, float* o, float* l) {
    const auto qh = head_of(pr.q.values, B, N, H, D, b, h);
    const auto kh = head_of(pr.k.values, B, N, H, D, b, h);
    const auto vh = head_of(pr.v.values, B, N, H, D, b, h);
    sparseplan::ref::dense_attention(shape, qh.data(), kh.data(), vh.data(), o, l);
  });
}

// Per head: window-shaped rows (key blocks within `radius` of the query block's position, as
// tile-ordered 3D windows give) plus one random block; rows with qb % 3 == 1 are empty, so
// pairs of 64-row blocks meet an empty odd block (qb 1) and an empty even one (qb 4).
Csr window_layout(int B, int H, int nqb, int nkb, int radius, std::mt19937& rng) {
  Csr c;
  std::uniform_int_distribution<int> any(0, nkb - 1);
  for (int bh = 0; bh < B * H; ++bh)
    for (int qb = 0; qb < nqb; ++qb) {
      c.row_offsets.push_back(int32_t(c.cols.size()));
      if (qb % 3 == 1) continue;
      const int center = int(int64_t(qb) * nkb / nqb), extra = any(rng);
      for (int kb = 0; kb < nkb; ++kb)
        if (std::abs(kb - center) <= radius || kb == extra) c.cols.push_back(kb);
    }
  c.row_offsets.push_back(int32_t(c.cols.size()));
  // Global offsets: each head's last entry is the next head's first.
  std::vector<int32_t> global;
  for (int bh = 0; bh < B * H; ++bh)
    for (int qb = 0; qb <= nqb; ++qb)
      global.push_back(qb < nqb ? c.row_offsets[size_t(bh) * nqb + qb]
                                : c.row_offsets[size_t(bh + 1) * nqb]);
  c.row_offsets = global;
  return c;
}

// Sets an environment variable for the scope (the kernels read their switches at every call).
struct ScopedEnv {
  std::string name;
  std::string old;
  bool had;
  ScopedEnv(const char* n, const char* value) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    setenv(n, value, 1);
  }
  ~ScopedEnv() {
    if (had) setenv(name.c_str(), old.c_str(), 1);
    else unsetenv(name.c_str());
  }
};

void run_sparse_layout(int B, int N, int H, int D, DType dt, int block_q, int block_k,
                       const Csr& csr, bool padded, std::mt19937& rng,
                       const std::vector<int32_t>& pair_order = {});

// A q_pair_order of B * H heads: each a random permutation of its nqb query blocks, but the
// last head's, which repeats a block (not a permutation: that head keeps consecutive pairs).
std::vector<int32_t> shuffled_pair_order(int B, int H, int nqb, std::mt19937& rng) {
  std::vector<int32_t> order;
  for (int bh = 0; bh < B * H; ++bh) {
    std::vector<int32_t> head(static_cast<size_t>(nqb));
    std::iota(head.begin(), head.end(), 0);
    std::shuffle(head.begin(), head.end(), rng);
    if (bh == B * H - 1 && nqb > 1) head[0] = head[1];
    order.insert(order.end(), head.begin(), head.end());
  }
  return order;
}

void run_sparse_case(int B, int N, int H, int D, DType dt, int block_q, int block_k,
                     const std::vector<double>& densities, bool padded) {
  const int nqb = (N + block_q - 1) / block_q, nkb = (N + block_k - 1) / block_k;
  std::mt19937 rng(7u + N);
  const Csr csr = random_layout(B, H, nqb, nkb, densities, rng);
  run_sparse_layout(B, N, H, D, dt, block_q, block_k, csr, padded, rng);
}

void run_window_case(int N, int H, int D, DType dt, int block_k, int radius, bool padded,
                     bool shuffled_pairs = false) {
  const int nqb = (N + 63) / 64, nkb = (N + block_k - 1) / block_k;
  std::mt19937 rng(11u + N + radius);
  const Csr csr = window_layout(1, H, nqb, nkb, radius, rng);
  const std::vector<int32_t> order =
      shuffled_pairs ? shuffled_pair_order(1, H, nqb, rng) : std::vector<int32_t>{};
  run_sparse_layout(1, N, H, D, dt, 64, block_k, csr, padded, rng, order);
}

void run_sparse_layout(int B, int N, int H, int D, DType dt, int block_q, int block_k,
                       const Csr& csr, bool padded, std::mt19937& rng,
                       const std::vector<int32_t>& pair_order) {
  Problem pr = make_problem(B, N, H, D, dt, 99u + block_q + block_k + D);
  const int nqb = (N + block_q - 1) / block_q, nkb = (N + block_k - 1) / block_k;
  // Padding: each key block keeps a random number of leading keys; the padded keys hold NaN
  // in K and V so any leak shows.
  std::vector<int32_t> valid;
  if (padded) {
    std::uniform_int_distribution<int> keep(0, block_k);
    for (int kb = 0; kb < nkb; ++kb) valid.push_back(kb % 3 == 0 ? block_k : keep(rng));
    const uint16_t nan_bits = 0xffff;
    for (int b = 0; b < B; ++b)
      for (int n = 0; n < N; ++n)
        if (n % block_k >= valid[size_t(n / block_k)])
          for (int h = 0; h < H; ++h)
            for (int d = 0; d < D; ++d) {
              const size_t i = ((size_t(b) * N + n) * H + h) * D + d;
              pr.k.bits[i] = pr.v.bits[i] = nan_bits;
            }
  }
  DeviceBuffer<uint16_t> q(pr.q.bits), k(pr.k.bits), v(pr.v.bits), out(pr.q.bits.size());
  DeviceBuffer<float> lse(size_t(B) * H * N);
  DeviceBuffer<int32_t> ro(csr.row_offsets), cols(csr.cols.empty() ? std::vector<int32_t>{0}
                                                                    : csr.cols);
  DeviceBuffer<int32_t> kvv(valid.empty() ? std::vector<int32_t>{0} : valid);
  DeviceBuffer<int32_t> pairs(pair_order.empty() ? std::vector<int32_t>{0} : pair_order);
  out.poison();
  lse.poison();
  auto p = params_for(pr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr);
  p.block_q = block_q, p.block_k = block_k;
  p.row_offsets = ro.ptr, p.col_indices = cols.ptr;
  p.num_cols = int64_t(csr.cols.size());
  p.kv_block_valid = padded ? kvv.ptr : nullptr;
  p.q_pair_order = pair_order.empty() ? nullptr : pairs.ptr;
  DeviceBuffer<uint8_t> ws(sparseplan::cuda::block_sparse_workspace_bytes(p));
  sparseplan::cuda::block_sparse_attention_forward(p, dt, ws.ptr, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "block-sparse attention");
  sparseplan::ref::HeadShape shape{N, N, D, p.scale};
  check_against(pr, out.download(), lse.download(), [&](int b, int h, float* o, float* l) {
    const auto qh = head_of(pr.q.values, B, N, H, D, b, h);
    const auto kh = head_of(pr.k.values, B, N, H, D, b, h);
    const auto vh = head_of(pr.v.values, B, N, H, D, b, h);
    const int32_t* base = csr.row_offsets.data() + size_t(b * H + h) * (nqb + 1);
    std::vector<int32_t> local(base, base + nqb + 1);
    for (auto& x : local) x -= base[0];
    sparseplan::ref::BlockSparsity sp{block_q, block_k, local.data(),
                                      csr.cols.data() + base[0],
                                      padded ? valid.data() : nullptr};
    sparseplan::ref::block_sparse_attention(shape, sp, qh.data(), kh.data(), vh.data(), o, l);
  });
}
#endif

}  // namespace

TEST_CASE("dense attention matches the reference (bf16 and fp16, head_dim 64 and 128)", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  for (DType dt : {DType::BF16, DType::FP16})
    for (int D : {64, 128}) {
      INFO("dtype " << (dt == DType::BF16 ? "bf16" : "fp16") << " head_dim " << D);
      run_dense_case(2, 333, 3, D, dt);  // ragged last query and key tiles
    }
#endif
}

TEST_CASE("block-sparse attention matches the reference for all block sizes", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  for (int bq : {64, 128})
    for (int bk : {64, 128})
      for (int D : {64, 128}) {
        INFO("block_q " << bq << " block_k " << bk << " head_dim " << D);
        run_sparse_case(1, 700, 2, D, DType::BF16, bq, bk, {0.5, 0.25}, false);
      }
  run_sparse_case(1, 500, 2, 128, DType::FP16, 128, 128, {0.5}, false);
#endif
}

TEST_CASE("block-sparse attention balances heads of very different density", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_sparse_case(2, 1100, 4, 128, DType::BF16, 128, 128, {1.0, 1.0 / 16, 0.5, 0.0}, false);
#endif
}

TEST_CASE("block-sparse CTAs running many tiles each draw them in turn or take the static deal", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  // 640 tiles, more than 4 per CTA on GPUs of up to 160 SMs: the ring of drawn items wraps
  // (and the rounds kernel's rings of single blocks carry over from tile to tile).
  for (const char* draw : {"1", "0"}) {
    ScopedEnv env("SPARSEPLAN_WORK_DRAW", draw);
    INFO("SPARSEPLAN_WORK_DRAW=" << draw);
    run_sparse_case(4, 2048, 10, 64, DType::BF16, 128, 128, {1.0 / 8, 1.0 / 16, 0.25}, false);
    for (const char* pairs : {"2", "4", "5"}) {
      ScopedEnv mode("SPARSEPLAN_PAIR64", pairs);
      INFO("SPARSEPLAN_PAIR64=" << pairs);
      run_sparse_case(4, 2048, 10, 64, DType::BF16, 64, 64, {1.0 / 16, 1.0 / 8, 0.0}, true);
    }
  }
#endif
}

TEST_CASE("block-sparse attention gives empty rows zeros and LSE -inf", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_sparse_case(1, 640, 2, 64, DType::BF16, 64, 64, {-0.5, 0.0}, false);
#endif
}

TEST_CASE("block-sparse attention masks padded keys (NaN there never leaks)", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_sparse_case(1, 768, 2, 128, DType::BF16, 128, 128, {1.0, 0.5}, true);
  run_sparse_case(1, 768, 2, 64, DType::FP16, 64, 128, {1.0, 0.5}, true);
#endif
}

#ifdef SPARSEPLAN_WITH_CUDA
// Window rows (whole runs of key blocks, as tile-ordered 3D windows give), rows with one block
// of a pair empty, an odd block count, padded keys holding NaN, and random rows (chunks of one
// block between runs), for one SPARSEPLAN_PAIR64 mode.
void run_pair_cases(const char* mode) {
  ScopedEnv env("SPARSEPLAN_PAIR64", mode);
  for (int bk : {64, 128})
    for (int D : {64, 128}) {
      INFO("SPARSEPLAN_PAIR64=" << mode << " block_k " << bk << " head_dim " << D);
      run_window_case(1400, 2, D, DType::BF16, bk, 2, false);  // 22 query blocks, 11 pairs
      run_window_case(1000, 2, D, DType::FP16, bk, 3, true);   // 16 blocks, ragged, padded keys
      run_window_case(700, 3, D, DType::BF16, bk, 1, true);    // 11 blocks: last pair has one
    }
  INFO("SPARSEPLAN_PAIR64=" << mode << " random rows");
  run_sparse_case(2, 900, 3, 128, DType::BF16, 64, 64, {1.0, 1.0 / 16, -0.5, 0.0}, true);
  run_sparse_case(1, 1100, 2, 64, DType::FP16, 64, 64, {0.3, 0.6}, false);
}
#endif

TEST_CASE("paired 64-row query blocks in chunks of one key block match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_pair_cases("1");
#endif
}

TEST_CASE("paired 64-row query blocks with two key blocks per 128-key stage match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_pair_cases("2");
#endif
}

TEST_CASE("paired 64-row query blocks with split stages first match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_pair_cases("5");
#endif
}

TEST_CASE("a pair's union leads with split stages, a block only the first row lists beside one only the second lists", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  namespace cu = sparseplan::cuda;
  // Row 0 lists key blocks 0-4, row 1 blocks 2-8 and 40 (another word of the bitmap): the
  // first two blocks only row 0 lists pair with the first two only row 1 lists, the rest
  // follows in key order.
  DeviceBuffer<int32_t> ro(std::vector<int32_t>{0, 5, 13}),
      cols(std::vector<int32_t>{0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7, 8, 40});
  cu::AttentionParams p;
  p.batch = p.heads = p.kv_heads = 1;
  p.q_len = 128, p.kv_len = 64 * 48;
  p.block_q = p.block_k = 64;
  p.row_offsets = ro.ptr, p.col_indices = cols.ptr, p.num_cols = 13;
  const auto unions = [&](bool split, int& stages) {
    DeviceBuffer<int32_t> work(1), chunks(13);
    DeviceBuffer<cu::PairRows> rows(1);
    DeviceBuffer<uint8_t> scratch(cu::detail::pair_work_scratch_bytes(1, 48));
    chunks.poison();
    cu::detail::build_pair_work_list(p, 2, 48, work.ptr, rows.ptr, chunks.ptr, nullptr, nullptr,
                                     0, split, scratch.ptr, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "pair work list");
    const cu::PairRows r = rows.download()[0];
    REQUIRE(r.count == 10);
    stages = r.split;
    std::vector<std::pair<int, int>> blocks;  // key block, members (encode_pair_chunk)
    for (int32_t code : chunks.download()) {
      if (int(blocks.size()) == r.count) break;
      blocks.emplace_back(code >> 2, code & 3);
    }
    return blocks;
  };
  int stages = -1;
  CHECK(unions(true, stages) == std::vector<std::pair<int, int>>{
                                    {0, 1}, {5, 2}, {1, 1}, {6, 2}, {2, 3}, {3, 3}, {4, 3},
                                    {7, 2}, {8, 2}, {40, 2}});
  CHECK(stages == 2);
  CHECK(unions(false, stages) == std::vector<std::pair<int, int>>{
                                     {0, 1}, {1, 1}, {2, 3}, {3, 3}, {4, 3}, {5, 2}, {6, 2},
                                     {7, 2}, {8, 2}, {40, 2}});
  CHECK(stages == 0);
#endif
}

TEST_CASE("paired 64-row query blocks in shared rounds match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_pair_cases("3");
#endif
}

TEST_CASE("paired 64-row query blocks in rounds of their own key blocks match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_pair_cases("4");
#endif
}

#ifdef SPARSEPLAN_WITH_CUDA
// Per head: pairs (2 i, 2 i + 1) whose rows drift apart by `drift` key blocks, each row a run
// of `run` blocks from a start of its own, every fourth pair's second row empty.
Csr drifting_layout(int H, int nqb, int nkb, int run, int drift) {
  Csr c;
  for (int h = 0; h < H; ++h) {
    for (int qb = 0; qb < nqb; ++qb) {
      c.row_offsets.push_back(int32_t(c.cols.size()));
      if (qb % 8 == 7) continue;
      const int start = (qb / 2 * 3 + (qb % 2) * drift + h) % std::max(1, nkb - run);
      for (int kb = start; kb < std::min(nkb, start + run); ++kb) c.cols.push_back(kb);
    }
    c.row_offsets.push_back(int32_t(c.cols.size()));  // the head's end, the next head's start
  }
  return c;
}
#endif

TEST_CASE("paired rows that drift a ring apart take shared rounds beside own ones and match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  // Drift 1 fits every ring (own rounds), 12 no ring (shared), 5 the head_dim 64 ring only.
  ScopedEnv env("SPARSEPLAN_PAIR64", "4");
  for (int drift : {1, 5, 12})
    for (int D : {64, 128}) {
      INFO("drift " << drift << " head_dim " << D);
      const int N = 1500, nqb = (N + 63) / 64;
      std::mt19937 rng(3u + drift);
      run_sparse_layout(1, N, 2, D, DType::BF16, 64, 64, drifting_layout(2, nqb, nqb, 9, drift),
                        drift == 5, rng);
    }
#endif
}

TEST_CASE("paired 64-row query blocks in any pair order match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  for (const char* mode : {"1", "2", "3", "4", "5"}) {
    ScopedEnv env("SPARSEPLAN_PAIR64", mode);
    for (int bk : {64, 128})
      for (int D : {64, 128}) {
        INFO("SPARSEPLAN_PAIR64=" << mode << " block_k " << bk << " head_dim " << D);
        run_window_case(1400, 3, D, DType::BF16, bk, 2, false, true);  // 22 blocks
        run_window_case(700, 3, D, DType::FP16, bk, 1, true, true);    // 11: a pair of one
      }
  }
#endif
}

TEST_CASE("unpaired 64-row query blocks (pairing turned off) match the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  ScopedEnv off("SPARSEPLAN_PAIR64", "0");
  for (int bk : {64, 128}) {
    INFO("block_k " << bk);
    run_window_case(1000, 2, 128, DType::BF16, bk, 2, true);
    run_sparse_case(1, 640, 2, 64, DType::BF16, 64, bk, {-0.5, 0.25}, false);
  }
#endif
}

#ifdef SPARSEPLAN_WITH_CUDA
// The fused tile order's slots: model token of each tile-order row (-1: padding), tiles in
// (f, h, w) order, a tile's tokens in (f, h, w) order from its block's first row.
std::vector<int32_t> tile_order_tokens(const sparseplan::cuda::VideoTiles& g, int block,
                                       std::vector<int32_t>& tile_tokens) {
  const int tf = (g.frames + g.tile_f - 1) / g.tile_f, th = (g.height + g.tile_h - 1) / g.tile_h,
            tw = (g.width + g.tile_w - 1) / g.tile_w;
  std::vector<int32_t> token(size_t(tf) * th * tw * block, -1);
  tile_tokens.assign(size_t(tf) * th * tw, 0);
  for (int f = 0; f < g.frames; ++f)
    for (int h = 0; h < g.height; ++h)
      for (int w = 0; w < g.width; ++w) {
        const int tile = (f / g.tile_f * th + h / g.tile_h) * tw + w / g.tile_w;
        const int hc = std::min(g.tile_h, g.height - h / g.tile_h * g.tile_h);
        const int wc = std::min(g.tile_w, g.width - w / g.tile_w * g.tile_w);
        const int i = (f % g.tile_f * hc + h % g.tile_h) * wc + w % g.tile_w;
        token[size_t(tile) * block + i] = (f * g.height + h) * g.width + w;
        ++tile_tokens[size_t(tile)];
      }
  return token;
}

// The fused tile order against the reference run in tile order on gathered inputs: window
// rows with empty ones (pairs meet an empty block) over a grid with partial tiles on every
// axis, the layout indexing tiles. In the tile-major order (g.tile_major) the inputs' rows are
// the tile order's slots with the padding left out.
void run_fused_case(const sparseplan::cuda::VideoTiles& g, int block, int H, int D, DType dt,
                    bool shuffled_pairs = false) {
  const int N = g.frames * g.height * g.width;
  std::vector<int32_t> tile_tokens;
  std::vector<int32_t> token = tile_order_tokens(g, block, tile_tokens);
  if (g.tile_major) {
    int32_t row = 0;
    for (int32_t& t : token)
      if (t >= 0) t = row++;
  }
  const int tiles = int(tile_tokens.size()), slots = tiles * block;
  std::mt19937 rng(17u + N + block + D);
  const Csr csr = window_layout(1, H, tiles, tiles, 2, rng);
  const std::vector<int32_t> order = shuffled_pairs ? shuffled_pair_order(1, H, tiles, rng)
                                                    : std::vector<int32_t>{0};
  const Problem pr = make_problem(1, N, H, D, dt, 5u + N + D);
  DeviceBuffer<uint16_t> q(pr.q.bits), k(pr.k.bits), v(pr.v.bits), out(pr.q.bits.size());
  DeviceBuffer<float> lse(size_t(H) * N);
  DeviceBuffer<int32_t> ro(csr.row_offsets), cols(csr.cols), pairs(order);
  out.poison();
  lse.poison();
  auto p = params_for(pr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr);
  p.block_q = p.block_k = block;
  p.row_offsets = ro.ptr, p.col_indices = cols.ptr;
  p.num_cols = int64_t(csr.cols.size());
  p.video = g;
  p.q_pair_order = shuffled_pairs ? pairs.ptr : nullptr;
  DeviceBuffer<uint8_t> ws(sparseplan::cuda::block_sparse_workspace_bytes(p));
  sparseplan::cuda::block_sparse_attention_forward(p, dt, ws.ptr, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "block-sparse attention (fused tile order)");
  const auto to_tiles = [&](const std::vector<float>& x) {
    std::vector<float> t(size_t(slots) * D, 0.0f);
    for (int s = 0; s < slots; ++s)
      if (token[size_t(s)] >= 0)
        std::copy_n(x.begin() + int64_t(token[size_t(s)]) * D, D, t.begin() + int64_t(s) * D);
    return t;
  };
  sparseplan::ref::HeadShape shape{slots, slots, D, p.scale};
  check_against(pr, out.download(), lse.download(), [&](int b, int h, float* o, float* l) {
    const auto qt = to_tiles(head_of(pr.q.values, 1, N, H, D, b, h));
    const auto kt = to_tiles(head_of(pr.k.values, 1, N, H, D, b, h));
    const auto vt = to_tiles(head_of(pr.v.values, 1, N, H, D, b, h));
    const int32_t* base = csr.row_offsets.data() + size_t(h) * (tiles + 1);
    std::vector<int32_t> local(base, base + tiles + 1);
    for (auto& x : local) x -= base[0];
    sparseplan::ref::BlockSparsity sp{block, block, local.data(), csr.cols.data() + base[0],
                                      tile_tokens.data()};
    std::vector<float> ot(size_t(slots) * D), lt(static_cast<size_t>(slots));
    sparseplan::ref::block_sparse_attention(shape, sp, qt.data(), kt.data(), vt.data(),
                                            ot.data(), lt.data());
    for (int s = 0; s < slots; ++s)
      if (token[size_t(s)] >= 0) {
        std::copy_n(ot.begin() + int64_t(s) * D, D, o + int64_t(token[size_t(s)]) * D);
        l[token[size_t(s)]] = lt[size_t(s)];
      }
  });
}
#endif

#ifdef SPARSEPLAN_WITH_CUDA
// Every pairing mode, head_dim and dtype on grids with partial tiles and one without, and in
// shuffled pair orders.
void run_fused_cases(bool tile_major) {
  for (const char* mode : {"0", "1", "2", "3", "4", "5"}) {
    ScopedEnv env("SPARSEPLAN_PAIR64", mode);
    for (int D : {64, 128})
      for (DType dt : {DType::BF16, DType::FP16}) {
        INFO("SPARSEPLAN_PAIR64=" << mode << " head_dim " << D << " dtype "
                                  << (dt == DType::BF16 ? "bf16" : "fp16"));
        run_fused_case({9, 10, 18, 4, 4, 4, tile_major}, 64, 2, D, dt);  // 45 tiles: odd pairs
        run_fused_case({5, 6, 9, 2, 4, 4, tile_major}, 64, 2, D, dt);    // 32 tokens in 64 rows
        run_fused_case({9, 10, 18, 4, 4, 8, tile_major}, 128, 2, D, dt);  // 27 tiles of <= 128
        run_fused_case({8, 8, 12, 4, 4, 4, tile_major}, 64, 2, D, dt);   // every tile full
        run_fused_case({9, 10, 18, 4, 4, 4, tile_major}, 64, 3, D, dt, true);  // any pairs
      }
  }
}
#endif

TEST_CASE("the fused tile order reads and writes model order across partial tiles", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_fused_cases(false);
#endif
}

TEST_CASE("the tile-major order reads and writes runs of rows across partial tiles", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  run_fused_cases(true);
#endif
}

TEST_CASE("the fused tile order refuses grids and blocks it cannot run", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  const Problem pr = make_problem(1, 5 * 6 * 9, 2, 64, DType::BF16, 3u);
  DeviceBuffer<uint16_t> q(pr.q.bits), k(pr.k.bits), v(pr.v.bits), out(pr.q.bits.size());
  DeviceBuffer<float> lse(size_t(2) * pr.N);
  DeviceBuffer<int32_t> ro(std::vector<int32_t>(9, 0)), cols(std::vector<int32_t>{0});
  DeviceBuffer<uint8_t> ws(1 << 20);
  const auto fused = [&](auto&& edit) {
    auto p = params_for(pr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr);
    p.block_q = p.block_k = 64;
    p.row_offsets = ro.ptr, p.col_indices = cols.ptr;
    p.num_cols = 1;
    p.video = {5, 6, 9, 4, 4, 4};
    edit(p);
    sparseplan::cuda::block_sparse_attention_forward(p, DType::BF16, ws.ptr, nullptr);
  };
  using sparseplan::cuda::AttentionParams;
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.block_k = 128; }),
                    Catch::Contains("block_q (64) must equal block_k (128)"));
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.video.tile_w = 8; }),
                    Catch::Contains("tile 4x4x8 must fit one block of 64 tokens"));
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.video.frames = 4; }),
                    Catch::Contains("q_len and kv_len must match"));
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.video.tile_h = 0; }),
                    Catch::Contains("tile must be positive"));
  CHECK_THROWS_WITH(fused([&](AttentionParams& p) { p.kv_block_valid = ro.ptr; }),
                    Catch::Contains("kv_block_valid"));
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.q_head_stride = 128; }),
                    Catch::Contains("head stride"));
  CHECK_THROWS_WITH(fused([](AttentionParams& p) { p.num_cols = -1; }),
                    Catch::Contains("tile order needs num_cols"));
  auto dense = params_for(pr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr);
  dense.video = {5, 6, 9, 4, 4, 4};
  CHECK_THROWS_WITH(sparseplan::cuda::dense_attention_forward(dense, DType::BF16, nullptr),
                    Catch::Contains("block-sparse only"));
#endif
}

TEST_CASE("block mass matches the reference", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  for (int bq : {64, 128})
    for (int bk : {64, 128})
      for (int D : {64, 128}) {
        INFO("block_q " << bq << " block_k " << bk << " head_dim " << D);
        const int B = 1, N = 600, H = 2;
        const Problem pr = make_problem(B, N, H, D, DType::BF16, 5u + bq + bk + D);
        const int nqb = (N + bq - 1) / bq, nkb = (N + bk - 1) / bk;
        std::vector<int32_t> qvalid(size_t(nqb), bq), kvalid(size_t(nkb), bk);
        qvalid[1] = bq / 2;
        kvalid[2] = bk / 3;
        const float scale = 1.0f / std::sqrt(float(D));
        sparseplan::ref::HeadShape shape{N, N, D, scale};
        std::vector<float> lse(size_t(B) * H * N), want(size_t(B) * H * nqb * nkb);
        for (int h = 0; h < H; ++h) {
          const auto qh = head_of(pr.q.values, B, N, H, D, 0, h);
          const auto kh = head_of(pr.k.values, B, N, H, D, 0, h);
          const auto vh = head_of(pr.v.values, B, N, H, D, 0, h);
          std::vector<float> o(size_t(N) * D);
          sparseplan::ref::dense_attention(shape, qh.data(), kh.data(), vh.data(), o.data(),
                                           lse.data() + size_t(h) * N);
          lse[size_t(h) * N + 3] = -std::numeric_limits<float>::infinity();  // absent row
          sparseplan::ref::block_mass(shape, bq, bk, qvalid.data(), kvalid.data(), qh.data(),
                                      kh.data(), lse.data() + size_t(h) * N,
                                      want.data() + size_t(h) * nqb * nkb);
        }
        DeviceBuffer<uint16_t> q(pr.q.bits), k(pr.k.bits);
        DeviceBuffer<float> dl(lse), mass(want.size());
        DeviceBuffer<int32_t> dqv(qvalid), dkv(kvalid);
        mass.poison();
        sparseplan::cuda::BlockMassParams p;
        p.q = q.ptr, p.k = k.ptr, p.lse = dl.ptr, p.mass = mass.ptr;
        p.q_batch_stride = p.k_batch_stride = int64_t(N) * H * D;
        p.q_row_stride = p.k_row_stride = int64_t(H) * D;
        p.q_head_stride = p.k_head_stride = D;
        p.batch = B, p.heads = H, p.kv_heads = H, p.q_len = N, p.kv_len = N, p.head_dim = D;
        p.scale = scale, p.block_q = bq, p.block_k = bk;
        p.q_block_valid = dqv.ptr, p.kv_block_valid = dkv.ptr;
        sparseplan::cuda::block_mass_forward(p, DType::BF16, nullptr);
        cuda_ok(cudaDeviceSynchronize(), "block mass");
        CHECK(rel_l2(mass.download(), want) < 1e-2);
      }
#endif
}

TEST_CASE("online selection matches the CPU reference (mass target and top-k)", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int BH = 6, nqb = 37;
  for (int nkb : {1, 37, 300, 1000}) {
    std::vector<float> mass(size_t(BH) * nqb * nkb);
    for (auto& x : mass) x = std::pow(u(rng), 6.0f);  // peaked, like attention mass
    mass[5] = -1.0f;
    std::vector<uint8_t> forced(size_t(nkb), 0);
    forced[size_t(nkb - 1)] = 1;  // e.g. a text block
    struct Case {
      sparseplan::ref::SelectionRule rule;
      bool use_forced;
    };
    const std::vector<Case> cases = {{{0.9f, 0, 1, 0}, false},
                                     {{0.5f, 0, 2, 16}, true},
                                     {{0.9f, 8, 1, 0}, true},
                                     {{0.99f, 0, 0, 4}, false}};
    for (const Case& c : cases) {
      INFO("nkb " << nkb << " target " << c.rule.mass_target << " top_k " << c.rule.top_k);
      std::vector<int32_t> ref_ro, ref_cols;
      sparseplan::ref::select_blocks(c.rule, mass.data(), int64_t(BH) * nqb, nkb,
                                     c.use_forced ? forced.data() : nullptr, ref_ro, ref_cols);
      DeviceBuffer<float> dm(mass);
      DeviceBuffer<uint8_t> df(forced);
      DeviceBuffer<int32_t> ro(size_t(BH) * (nqb + 1)), cols(size_t(BH) * nqb * nkb);
      DeviceBuffer<uint8_t> ws(sparseplan::cuda::block_select_workspace_bytes(BH * nqb, nkb));
      ro.poison();
      sparseplan::cuda::block_select(c.rule, dm.ptr, BH, nqb, nkb,
                                     c.use_forced ? df.ptr : nullptr, ro.ptr, cols.ptr, ws.ptr,
                                     nullptr);
      cuda_ok(cudaDeviceSynchronize(), "block select");
      const auto got_ro = ro.download();
      const auto got_cols = cols.download();
      std::vector<int32_t> want_ro;
      for (int bh = 0; bh < BH; ++bh)
        for (int qb = 0; qb <= nqb; ++qb) want_ro.push_back(ref_ro[size_t(bh * nqb + qb)]);
      CHECK(got_ro == want_ro);
      CHECK(std::vector<int32_t>(got_cols.begin(), got_cols.begin() + ref_cols.size()) ==
            ref_cols);
    }
  }
#endif
}

TEST_CASE("token reordering round-trips and zero-fills padding", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  const int B = 2, tokens = 1000, padded = 1152, row = 3 * 64;  // row = H * D elements
  std::mt19937 rng(3);
  std::vector<int32_t> slots(padded);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  std::vector<int32_t> slot_of_token(slots.begin(), slots.begin() + tokens);
  std::vector<int32_t> token_of_slot(padded, -1);
  for (int t = 0; t < tokens; ++t) token_of_slot[size_t(slot_of_token[size_t(t)])] = t;
  const HalfTensor x = random_half(size_t(B) * tokens * row, DType::BF16, rng);
  DeviceBuffer<uint16_t> dx(x.bits), tiled(size_t(B) * padded * row), back(x.bits.size());
  DeviceBuffer<int32_t> tos(token_of_slot), sot(slot_of_token);
  tiled.poison();
  back.poison();
  const int64_t rb = row * 2;
  sparseplan::cuda::gather_rows(dx.ptr, tokens * rb, tokens, tiled.ptr, padded * rb, padded, rb,
                                B, tos.ptr, nullptr);
  sparseplan::cuda::gather_rows(tiled.ptr, padded * rb, padded, back.ptr, tokens * rb, tokens,
                                rb, B, sot.ptr, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "gather_rows");
  CHECK(back.download() == x.bits);
  const auto t = tiled.download();
  bool padding_zero = true, placed = true;
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < padded; ++s)
      for (int e = 0; e < row; ++e) {
        const uint16_t got = t[(size_t(b) * padded + s) * row + e];
        const int tok = token_of_slot[size_t(s)];
        if (tok < 0) padding_zero &= got == 0;
        else placed &= got == x.bits[(size_t(b) * tokens + tok) * row + e];
      }
  CHECK(padding_zero);
  CHECK(placed);
#endif
}

TEST_CASE("kernels reject bad arguments with a message naming them", "[gpu]") {
  SKIP_WITHOUT_GPU();
#ifdef SPARSEPLAN_WITH_CUDA
  sparseplan::cuda::AttentionParams p;
  p.batch = 1, p.heads = 2, p.kv_heads = 2, p.q_len = 10, p.kv_len = 10, p.head_dim = 96;
  p.scale = 0.1f;
  CHECK_THROWS_WITH(sparseplan::cuda::dense_attention_forward(p, DType::BF16, nullptr),
                    Catch::Contains("head_dim"));
  p.head_dim = 64;
  p.block_q = 32;
  CHECK_THROWS_WITH(sparseplan::cuda::block_sparse_attention_forward(p, DType::BF16, nullptr,
                                                                     nullptr),
                    Catch::Contains("q"));
  sparseplan::ref::SelectionRule bad{1.5f, 0, 1, 0};
  CHECK_THROWS_WITH(sparseplan::ref::check_selection_rule(bad), Catch::Contains("mass_target"));
#endif
}
