// The CUDA kernels on q/k/v captured from a real model: wan-mini's self-attention inputs (after
// RMSNorm and RoPE) at its first and last layer, against the float32 CPU references. Skips with
// a printed reason without a GPU, without a CUDA build, or without the wan-mini fixture.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention_reference.h"
#include "io/safetensors.h"
#include "model/wan_model.h"

#ifdef SPARSEPLAN_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/attention_api.h"
#endif

// LibTorch built with glog defines a one-argument CHECK; Catch's must win.
#undef CHECK
#include <catch2/catch.hpp>

namespace {

using namespace sparseplan;

std::string wan_mini_dir() {
  for (const char* d : {SPARSEPLAN_WAN_MINI_SHARED, SPARSEPLAN_WAN_MINI_LOCAL})
    if (std::filesystem::exists(std::string(d) + "/config.json")) return d;
  return "";
}

struct Captured {
  torch::Tensor q, k, v;  // [1, N, H, D] float32, rounded to bf16
};

// q/k/v of the conditional branch's self-attention at every layer, one forward pass on the
// fixture's reference input.
const std::map<int, Captured>& captured() {
  static const std::map<int, Captured> calls = [] {
    const std::string dir = wan_mini_dir();
    const WanModel model = load_wan_model(dir);
    const SafetensorsFile ref(dir + "/reference.safetensors");
    std::map<int, Captured> out;
    AttentionFn capture = [&](const AttentionCall& call, const torch::Tensor& q,
                              const torch::Tensor& k, const torch::Tensor& v) {
      out[call.layer] = {round_to_bf16(q.to(torch::kFloat32)).contiguous(),
                         round_to_bf16(k.to(torch::kFloat32)).contiguous(),
                         round_to_bf16(v.to(torch::kFloat32)).contiguous()};
      return dense_attention(q, k, v);
    };
    model.forward(ref.load("x"), ref.load("t"), ref.load("context"), capture);
    return out;
  }();
  return calls;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

#ifdef SPARSEPLAN_WITH_CUDA
bool gpu_available(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    why = std::string("skipped: no usable GPU (") +
          (err != cudaSuccess ? cudaGetErrorString(err) : "none found") + ")";
    return false;
  }
  return true;
}

template <typename T>
T* to_device(const void* host, size_t bytes) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, std::max<size_t>(bytes, 4)) == cudaSuccess);
  if (host != nullptr) REQUIRE(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  else REQUIRE(cudaMemset(p, 0xff, bytes) == cudaSuccess);  // poison
  return static_cast<T*>(p);
}

std::vector<float> head(const torch::Tensor& x, int h) {
  const torch::Tensor t = x.select(0, 0).select(1, h).contiguous();
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}
#endif

}  // namespace

TEST_CASE("kernels match the references on q/k/v captured from wan-mini", "[gpu]") {
#ifndef SPARSEPLAN_WITH_CUDA
  WARN("skipped: built without CUDA (SPARSEPLAN_WITH_CUDA unset)");
  return;
#else
  std::string why;
  if (!gpu_available(why)) {
    WARN(why);
    return;
  }
  if (wan_mini_dir().empty()) {
    WARN("skipped: wan-mini fixture not found (" << SPARSEPLAN_WAN_MINI_SHARED << ", "
                                                 << SPARSEPLAN_WAN_MINI_LOCAL << ")");
    return;
  }
  const auto& calls = captured();
  REQUIRE(!calls.empty());
  for (int layer : {calls.begin()->first, calls.rbegin()->first}) {
    const Captured& c = calls.at(layer);
    const int N = int(c.q.size(1)), H = int(c.q.size(2)), D = int(c.q.size(3));
    INFO("layer " << layer << ": N " << N << ", heads " << H << ", head_dim " << D);
    const torch::Tensor qb = c.q.to(torch::kBFloat16).contiguous(),
                        kb = c.k.to(torch::kBFloat16).contiguous(),
                        vb = c.v.to(torch::kBFloat16).contiguous();
    const size_t bytes = size_t(qb.numel()) * 2;
    auto* q = to_device<uint16_t>(qb.data_ptr(), bytes);
    auto* k = to_device<uint16_t>(kb.data_ptr(), bytes);
    auto* v = to_device<uint16_t>(vb.data_ptr(), bytes);
    auto* out = to_device<uint16_t>(nullptr, bytes);
    auto* lse = to_device<float>(nullptr, sizeof(float) * H * N);
    cuda::AttentionParams p;
    p.q = q, p.k = k, p.v = v, p.out = out, p.lse = lse;
    p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = int64_t(N) * H * D;
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = int64_t(H) * D;
    p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = D;
    p.batch = 1, p.heads = H, p.kv_heads = H, p.q_len = N, p.kv_len = N, p.head_dim = D;
    p.scale = 1.0f / std::sqrt(float(D));

    // Dense.
    cuda::dense_attention_forward(p, cuda::DType::BF16, nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    torch::Tensor got = torch::empty({1, N, H, D}, torch::kBFloat16);
    REQUIRE(cudaMemcpy(got.data_ptr(), out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    got = got.to(torch::kFloat32);
    std::vector<float> lse_got(size_t(H) * N);
    REQUIRE(cudaMemcpy(lse_got.data(), lse, lse_got.size() * 4, cudaMemcpyDeviceToHost) ==
            cudaSuccess);
    ref::HeadShape shape{N, N, D, p.scale};
    std::vector<float> lse_ref(size_t(H) * N);
    for (int h = 0; h < H; ++h) {
      const auto qh = head(c.q, h), kh = head(c.k, h), vh = head(c.v, h);
      std::vector<float> o(size_t(N) * D);
      ref::dense_attention(shape, qh.data(), kh.data(), vh.data(), o.data(),
                           lse_ref.data() + size_t(h) * N);
      INFO("dense head " << h);
      CHECK(rel_l2(head(got, h), o) < 1e-2);
    }
    CHECK(rel_l2(lse_got, lse_ref) < 1e-3);

    // Block-sparse: each 64-row query block keeps its diagonal block and every third block.
    const int nb = (N + 63) / 64;
    std::vector<int32_t> offsets, cols;
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb <= nb; ++qb) {
        offsets.push_back(int32_t(cols.size()));
        if (qb == nb) break;
        for (int kb = 0; kb < nb; ++kb)
          if (kb == qb || kb % 3 == h % 3) cols.push_back(kb);
      }
    // offsets holds nb + 1 entries per head, the last equal to the next head's first.
    auto* d_off = to_device<int32_t>(offsets.data(), offsets.size() * 4);
    auto* d_cols = to_device<int32_t>(cols.data(), cols.size() * 4);
    p.block_q = p.block_k = 64;
    p.row_offsets = d_off, p.col_indices = d_cols;
    p.num_cols = int64_t(cols.size());
    void* ws = to_device<uint8_t>(nullptr, cuda::block_sparse_workspace_bytes(p));
    REQUIRE(cudaMemset(out, 0xff, bytes) == cudaSuccess);
    cuda::block_sparse_attention_forward(p, cuda::DType::BF16, ws, nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    got = torch::empty({1, N, H, D}, torch::kBFloat16);
    REQUIRE(cudaMemcpy(got.data_ptr(), out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    got = got.to(torch::kFloat32);
    for (int h = 0; h < H; ++h) {
      const auto qh = head(c.q, h), kh = head(c.k, h), vh = head(c.v, h);
      const int32_t* base = offsets.data() + size_t(h) * (nb + 1);
      std::vector<int32_t> local(base, base + nb + 1);
      for (auto& x : local) x -= base[0];
      ref::BlockSparsity sp{64, 64, local.data(), cols.data() + base[0], nullptr};
      std::vector<float> o(size_t(N) * D), l(static_cast<size_t>(N));
      ref::block_sparse_attention(shape, sp, qh.data(), kh.data(), vh.data(), o.data(),
                                  l.data());
      INFO("block-sparse head " << h);
      CHECK(rel_l2(head(got, h), o) < 1e-2);
    }

    // Block mass from the reference LSE.
    cuda::BlockMassParams m;
    m.q = q, m.k = k;
    auto* d_lse = to_device<float>(lse_ref.data(), lse_ref.size() * 4);
    auto* d_mass = to_device<float>(nullptr, sizeof(float) * H * nb * nb);
    m.lse = d_lse, m.mass = d_mass;
    m.q_batch_stride = m.k_batch_stride = p.q_batch_stride;
    m.q_row_stride = m.k_row_stride = p.q_row_stride;
    m.q_head_stride = m.k_head_stride = D;
    m.batch = 1, m.heads = H, m.kv_heads = H, m.q_len = N, m.kv_len = N, m.head_dim = D;
    m.scale = p.scale, m.block_q = m.block_k = 64;
    cuda::block_mass_forward(m, cuda::DType::BF16, nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<float> mass(size_t(H) * nb * nb), want(mass.size());
    REQUIRE(cudaMemcpy(mass.data(), d_mass, mass.size() * 4, cudaMemcpyDeviceToHost) ==
            cudaSuccess);
    for (int h = 0; h < H; ++h) {
      const auto qh = head(c.q, h), kh = head(c.k, h);
      ref::block_mass(shape, 64, 64, nullptr, nullptr, qh.data(), kh.data(),
                      lse_ref.data() + size_t(h) * N, want.data() + size_t(h) * nb * nb);
    }
    CHECK(rel_l2(mass, want) < 1e-2);
    for (void* ptr : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v),
                      static_cast<void*>(out), static_cast<void*>(lse), static_cast<void*>(d_off),
                      static_cast<void*>(d_cols), ws, static_cast<void*>(d_lse),
                      static_cast<void*>(d_mass)})
      cudaFree(ptr);
  }
#endif
}
