// Text conditioning. wan-mini's toy encoder maps each prompt word to one row of an embedding
// table (vocab in the safetensors metadata); other Wan2.1 checkpoints take precomputed (umT5)
// embeddings from a safetensors file.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace sparseplan {

class ToyTextEncoder {
 public:
  // `path`: text_encoder.safetensors with tensor `embedding` [vocab, text_dim] and metadata
  // `vocab`, a JSON list of words (index 0 is the padding token).
  explicit ToyTextEncoder(const std::string& path, int text_len = 16);

  // Whitespace-separated words -> ids; throws std::invalid_argument listing unknown words or
  // when there are more than text_len words.
  std::vector<int64_t> token_ids(const std::string& prompt) const;
  // [text_len, text_dim] float32: one row per word, zero rows after the last word.
  torch::Tensor encode(const std::string& prompt) const;

  const std::vector<std::string>& vocab() const { return vocab_; }
  int text_len() const { return text_len_; }

 private:
  std::string path_;
  int text_len_;
  std::vector<std::string> vocab_;
  torch::Tensor embedding_;  // float32
};

struct PrecomputedContext {
  torch::Tensor context;           // [L, text_dim] float32
  torch::Tensor negative_context;  // [L, text_dim] float32, or undefined when the file has none
};

// Reads tensors `context` and optionally `negative_context` ([L, text_dim] or [1, L, text_dim],
// BF16/F16/F32) from a safetensors file; checks text_dim and L <= text_len.
PrecomputedContext load_precomputed_context(const std::string& path, int text_dim, int text_len);

}  // namespace sparseplan
