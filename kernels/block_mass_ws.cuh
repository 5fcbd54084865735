// Block mass on Hopper with the warp-specialized structure of the attention kernel: the
// producer warp feeds Q and K (no V) through TMA; the two consumer warpgroups ping-pong, so
// one's exponentials run while the other's score GEMM keeps the tensor cores busy. The turn
// passes when this warpgroup's GEMM has completed, not when it is issued: issued together,
// the two GEMMs interleave on the tensor cores and finish together, and both warpgroups then
// wait on MUFU together (measured: 0.81 -> 0.73 of dense at head_dim 64, same at 128). Two
// score GEMMs per warpgroup, the second under the first's exponentials, measured slower
// (0.72 / 0.84). One chunk is one key block; each warp adds its share of a block's mass with
// one atomic (the launcher zeroes the output).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/fast_exp2.cuh"
#include "kernels/flash_ws_kernel.cuh"

namespace sparseplan::cuda {

struct WsMassParams {
  WsParams w;  // w.a describes Q and K; V and O are unused
  const float* lse;
  float* mass;
  const int32_t* q_block_valid;
};

template <typename Traits>
__device__ __forceinline__ float block_exp_sum(float (&S)[Traits::kNTiles][4], int valid,
                                               float scale_log2, const float (&row_lse2)[2]) {
  if (valid < Traits::kBlockN) mask_chunk<Traits>(S, valid);
  float sum = 0.0f;
#pragma unroll
  for (int nt = 0; nt < Traits::kNTiles; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) sum += fast_exp2(fmaf(S[nt][i], scale_log2, -row_lse2[i >> 1]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  return sum;
}

template <typename Traits>
__device__ __forceinline__ void consume_mass(const WsMassParams& mp, uint8_t* smem,
                                             WsBarriers<Traits>& bar, int g) {
  const AttentionParams& p = mp.w.a;
  const WsSchedule<Traits, false> schedule{p};
  constexpr float kLog2e = 1.4426950408889634f;
  const float scale_log2 = p.scale * kLog2e;
  const int tid = threadIdx.x % 128;
  const int lane = tid % 32, warp = tid / 32;
  const bool leader = tid == 0;
  const uint32_t s_base = sm90::smem_u32(smem);
  const PingPong<Traits::kConsumers == 2> turn{g};
  auto sK = [&](int stage) { return s_base + Traits::kKOffset + stage * Traits::kKBytes; };
  const int nkb = (p.kv_len + p.block_k - 1) / p.block_k;
  sm90::PipelineState<Traits::kQStages> qs;
  sm90::PipelineState<Traits::kKStages> ks;
  turn.start();
  for (int i = blockIdx.x; i < schedule.num_items(); i += gridDim.x) {
    const WsTile t = schedule.tile(i);
    const int n = schedule.chunks(t).count();
    const int q0 = t.q_tile * Traits::kBlockM;
    int q_valid = min(Traits::kBlockM, p.q_len - q0);
    if (mp.q_block_valid != nullptr) q_valid = min(q_valid, __ldg(mp.q_block_valid + t.q_tile));
    const float* lse = mp.lse + (int64_t(t.b) * p.heads + t.h) * p.q_len + q0;
    // A block's mass is the mean over its query rows that attend anything (finite LSE).
    const int me = g * 128 + tid;
    const bool counted = me < q_valid && lse[me] != -INFINITY;
    int rows;
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %1, 0;\nbar.red.popc.u32 %0, 5, %2, p;\n}\n"
                 : "=r"(rows)
                 : "r"(int(counted)), "r"(128 * Traits::kConsumers));
    const float inv_rows = rows > 0 ? 1.0f / float(rows) : 0.0f;
    float row_lse2[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = g * 64 + warp * 16 + (lane >> 2) + r * 8;
      const float l = row < q_valid ? lse[row] : -INFINITY;
      row_lse2[r] = l == -INFINITY ? INFINITY : l * kLog2e;
    }
    float* mass = mp.mass + ((int64_t(t.b) * p.heads + t.h) * schedule.q_tiles() + t.q_tile) * nkb;
    const uint32_t sQg = s_base + Traits::kQOffset + qs.stage * Traits::kQBytes + g * 64 * 128;
    sm90::mbarrier_wait(&bar.q_full[qs.stage], qs.phase);

    for (int j = 0; j < n; ++j) {
      float S[Traits::kNTiles][4];
      sm90::mbarrier_wait(&bar.k_full[ks.stage], ks.phase);
      turn.wait_turn();
      issue_scores<Traits>(S, sQg, sK(ks.stage));
      const int valid = read_chunk_valid(&bar.valid[ks.stage]);
      sm90::wait<0>();
      turn.pass_turn();
      sm90::fence_operand(reinterpret_cast<float(&)[Traits::kBlockN / 2]>(S));
      release_k_stage(&bar.k_empty[ks.stage]);
      ks.advance();
      const float sum = block_exp_sum<Traits>(S, valid, scale_log2, row_lse2);
      if (lane == 0 && sum != 0.0f) atomicAdd(mass + j, sum * inv_rows);
    }
    // Q is read only by the score GEMMs, all complete now.
    if (leader) sm90::mbarrier_arrive(&bar.q_empty[qs.stage]);
    qs.advance();
  }
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    block_mass_ws_kernel(const __grid_constant__ WsMassParams p) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  run_warp_specialized<Traits>(
      smem_raw, WsItems<Traits, false>::takers(false),
      [&](uint8_t* smem, auto& bar) { produce<Traits, false, false>(p.w, smem, bar); },
      [&](uint8_t* smem, auto& bar, int g) { consume_mass<Traits>(p, smem, bar, g); });
}

}  // namespace sparseplan::cuda
