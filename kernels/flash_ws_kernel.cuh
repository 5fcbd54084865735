// The warp-specialized Hopper attention kernel (dense and block-sparse): persistent CTAs of one
// producer warpgroup and kConsumers consumer warpgroups; see flash_ws_producer.cuh and
// flash_ws_consumer.cuh for the two roles and flash_ws_scheduler.cuh for the tile order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/flash_ws_consumer.cuh"
#include "kernels/flash_ws_producer.cuh"
#include "kernels/launch.h"

namespace sparseplan::cuda {

// The common frame of the warp-specialized kernels: aligns shared memory, sets up the ring
// barriers, and splits the CTA into the producer warps and the consumer warpgroups, moving
// registers from the one to the others. `item_takers`: the arrivals that free a slot of the
// drawn items' ring (WsItems).
template <typename Traits, typename Produce, typename Consume>
__device__ __forceinline__ void run_warp_specialized(uint8_t* smem_raw, int item_takers,
                                                     Produce&& produce_role,
                                                     Consume&& consume_role) {
  // TMA's 128-byte swizzle is a function of address bits: tiles start 1024-byte aligned.
  uint8_t* smem = smem_raw + ((1024 - (sm90::smem_u32(smem_raw) & 1023)) & 1023);
  auto& bar = *reinterpret_cast<WsBarriers<Traits>*>(smem + Traits::kBarOffset);
  if (threadIdx.x == 0) {
    for (int s = 0; s < Traits::kQStages; ++s) {
      sm90::mbarrier_init(&bar.q_full[s], 1);
      sm90::mbarrier_init(&bar.q_empty[s], Traits::kConsumers);
    }
    for (int s = 0; s < Traits::kKStages; ++s) {
      sm90::mbarrier_init(&bar.k_full[s], 1);
      sm90::mbarrier_init(&bar.k_empty[s], Traits::kConsumers * 4);  // one per consumer warp
    }
    for (int s = 0; s < Traits::kVStages; ++s) {
      sm90::mbarrier_init(&bar.v_full[s], 1);
      sm90::mbarrier_init(&bar.v_empty[s], Traits::kConsumers);
      sm90::mbarrier_init(&bar.v_landed[s], 1);
    }
    for (int s = 0; s < Traits::kItemStages; ++s) {
      sm90::mbarrier_init(&bar.item_full[s], 1);
      sm90::mbarrier_init(&bar.item_empty[s], item_takers);
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();
  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    if constexpr (Traits::kConsumers > 1) sm90::release_registers<Traits::kProducerRegs>();
    if (threadIdx.x < 64) produce_role(smem, bar);
  } else {
    if constexpr (Traits::kConsumers > 1) sm90::claim_registers<Traits::kConsumerRegs>();
    consume_role(smem, bar, warpgroup - 1);
  }
}

// kPaired: block-sparse over pairs of 64-row query blocks. kFused: block-sparse in the fused
// tile order (WsVideo), a kernel of its own: as a runtime choice its addressing cost the
// producer warp, which runs on 40 registers, spills in every kernel.
template <typename Traits, bool kSparse, bool kPaired = false, bool kFused = false>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    flash_ws_kernel(const __grid_constant__ WsParams p) {
  static_assert(kSparse || !kFused, "the fused tile order is block-sparse");
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  run_warp_specialized<Traits>(
      smem_raw,
      WsItems<Traits, kSparse>::takers(
          second_producer_walks<kSparse, true, kPaired, kFused>(p.a)),
      [&](uint8_t* smem, auto& bar) {
        produce<Traits, kSparse, true, kPaired, kFused>(p, smem, bar);
      },
      [&](uint8_t* smem, auto& bar, int g) {
        consume<Traits, kSparse, kPaired, kFused>(p, smem, bar, g);
      });
}

// Launches a persistent warp-specialized kernel over `items` tiles: at most as many CTAs as fit
// on the GPU at once (one per SM).
template <typename Traits, typename Params>
void launch_ws_kernel(void (*kernel)(Params), const Params& params, int items, cudaStream_t stream,
                      const char* what) {
  constexpr int smem = ws_smem_bytes<Traits>();
  detail::check_cuda(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
      (std::string(what) + ": raising the shared-memory limit").c_str());
  const int grid = std::min(
      items, detail::persistent_grid(reinterpret_cast<const void*>(kernel), Traits::kThreads, smem));
  if (grid > 0) kernel<<<grid, Traits::kThreads, smem, stream>>>(params);
  detail::check_cuda(cudaGetLastError(), (std::string(what) + " launch").c_str());
}

}  // namespace sparseplan::cuda
