// Work scheduling for block-sparse attention. Heads of very different density share one
// launch: every (batch, head, query block) is one work item, listed head-major
// (build_work_list), and a persistent grid of CTAs takes them from an atomic counter, so no SM
// idles while another works through a long tail.
#pragma once

#include <cstdint>

namespace sparseplan::cuda {

struct WorkItem {
  int bh;  // batch * heads + head
  int qb;  // query block
};

__device__ __forceinline__ WorkItem decode_work(int item, int num_q_blocks) {
  return {item / num_q_blocks, item % num_q_blocks};
}

// A key block of a paired tile's union (two 64-row query blocks over the union of their key
// blocks) and which of the two query blocks attend it (bit 0: the even block, consumer
// warpgroup 0; bit 1: the odd one).
__host__ __device__ __forceinline__ int32_t encode_pair_chunk(int key_block, int members) {
  return int32_t(key_block) << 2 | members;
}
__host__ __device__ __forceinline__ int pair_chunk_block(int32_t code) { return code >> 2; }
__host__ __device__ __forceinline__ int pair_chunk_members(int32_t code) { return code & 3; }

// Real keys of key block kb: those inside kv_len, at most kv_block_valid[kb] where given.
__device__ __forceinline__ int key_block_valid(int kb, int block_k, int kv_len,
                                               const int32_t* kv_block_valid) {
  int valid = min(block_k, kv_len - kb * block_k);
  if (kv_block_valid != nullptr) valid = min(valid, __ldg(kv_block_valid + kb));
  return max(valid, 0);
}

// Draws the next work item for the whole CTA; returns -1 when none is left. The caller
// __syncthreads() after finishing an item, before drawing again.
__device__ __forceinline__ int next_work(int32_t* counter, const int32_t* work_list, int num_work,
                                         int* s_item) {
  if (threadIdx.x == 0) {
    const int idx = atomicAdd(counter, 1);
    *s_item = idx < num_work ? (work_list != nullptr ? work_list[idx] : idx) : -1;
  }
  __syncthreads();
  return *s_item;
}

}  // namespace sparseplan::cuda
