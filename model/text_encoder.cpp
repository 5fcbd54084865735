#include "model/text_encoder.h"

#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace sparseplan {

ToyTextEncoder::ToyTextEncoder(const std::string& path, int text_len)
    : path_(path), text_len_(text_len) {
  const SafetensorsFile file(path);
  auto it = file.metadata().find("vocab");
  if (it == file.metadata().end())
    throw std::runtime_error(path + ": no 'vocab' metadata (not a wan-mini text encoder)");
  try {
    vocab_ = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": metadata 'vocab' is not a JSON list of words (" +
                             e.what() + ")");
  }
  embedding_ = file.load_float32("embedding");
  if (embedding_.dim() != 2 || embedding_.size(0) != int64_t(vocab_.size()))
    throw std::runtime_error(path + ": 'embedding' must be [vocab size " +
                             std::to_string(vocab_.size()) + ", text_dim]");
}

std::vector<int64_t> ToyTextEncoder::token_ids(const std::string& prompt) const {
  std::unordered_map<std::string, int64_t> id;
  for (size_t i = 1; i < vocab_.size(); ++i) id.emplace(vocab_[i], int64_t(i));
  std::istringstream words(prompt);
  std::vector<int64_t> ids;
  std::string word, unknown;
  while (words >> word) {
    auto found = id.find(word);
    if (found == id.end()) {
      unknown += (unknown.empty() ? "'" : ", '") + word + "'";
      continue;
    }
    ids.push_back(found->second);
  }
  if (!unknown.empty()) {
    std::string known;
    for (size_t i = 1; i < vocab_.size(); ++i) known += (i > 1 ? " " : "") + vocab_[i];
    throw std::invalid_argument("prompt has words the text encoder does not know: " + unknown +
                                " (known words: " + known + ")");
  }
  if (int(ids.size()) > text_len_)
    throw std::invalid_argument("prompt has " + std::to_string(ids.size()) +
                                " words; at most " + std::to_string(text_len_) + " fit");
  return ids;
}

torch::Tensor ToyTextEncoder::encode(const std::string& prompt) const {
  const std::vector<int64_t> ids = token_ids(prompt);
  torch::Tensor out = torch::zeros({text_len_, embedding_.size(1)}, embedding_.options());
  for (size_t i = 0; i < ids.size(); ++i) out[int64_t(i)].copy_(embedding_[ids[i]]);
  return out;
}

PrecomputedContext load_precomputed_context(const std::string& path, int text_dim, int text_len) {
  const SafetensorsFile file(path);
  auto read = [&](const std::string& name) {
    torch::Tensor t = file.load_float32(name);
    if (t.dim() == 3 && t.size(0) == 1) t = t[0];
    if (t.dim() != 2 || t.size(1) != text_dim || t.size(0) < 1 || t.size(0) > text_len)
      throw std::invalid_argument(path + ": tensor '" + name + "' must be [L, " +
                                  std::to_string(text_dim) + "] with 1 <= L <= " +
                                  std::to_string(text_len));
    return t;
  };
  if (!file.contains("context"))
    throw std::invalid_argument(path + ": no tensor named 'context' (the prompt's embeddings)");
  PrecomputedContext out;
  out.context = read("context");
  if (file.contains("negative_context")) out.negative_context = read("negative_context");
  return out;
}

}  // namespace sparseplan
