// Plain CPU references that the CUDA kernels are tested against. One head at a time, row-major
// float32 [tokens x head_dim]; LSE is the natural-log log-sum-exp of the scaled scores of each
// query row. Accumulation is in double so the references are more exact than any kernel.
#pragma once

#include <cstdint>

namespace sparseplan::ref {

struct HeadShape {
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int head_dim = 0;
  float scale = 0.0f;  // softmax scale, usually 1/sqrt(head_dim)
};

// Block CSR over query blocks of block_q rows and key blocks of block_k columns.
// kv_block_valid (may be null) gives, per key block, how many of its leading keys exist;
// keys past kv_len never exist.
struct BlockSparsity {
  int block_q = 64;
  int block_k = 64;
  const int32_t* row_offsets = nullptr;   // [num_q_blocks + 1]
  const int32_t* col_indices = nullptr;
  const int32_t* kv_block_valid = nullptr;
};

void dense_attention(const HeadShape& shape, const float* q, const float* k, const float* v,
                     float* out, float* lse);

// mask is row-major [q_len x kv_len], nonzero = attend. Rows with no key give zeros, LSE -inf.
void masked_dense_attention(const HeadShape& shape, const float* q, const float* k,
                            const float* v, const uint8_t* mask, float* out, float* lse);

// Query blocks with no key block give zeros and LSE -inf.
void block_sparse_attention(const HeadShape& shape, const BlockSparsity& sparsity, const float* q,
                            const float* k, const float* v, float* out, float* lse);

// Exact attention mass per (query block, key block): the probability mass that the block's
// query rows put on the block's keys, averaged over the query rows that exist, computed from
// the LSE of full attention one query row at a time (the N x N matrix is never held).
// q_block_valid / kv_block_valid (may be null) give the existing rows / keys of each block;
// rows with LSE -inf count as absent. mass is [num_q_blocks x num_k_blocks].
void block_mass(const HeadShape& shape, int block_q, int block_k, const int32_t* q_block_valid,
                const int32_t* kv_block_valid, const float* q, const float* k, const float* lse,
                float* mass);

int64_t num_blocks(int64_t len, int block);

}  // namespace sparseplan::ref
