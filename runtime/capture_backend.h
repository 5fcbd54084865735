// The capture backend: an AttentionFn that runs dense attention and, at the captured steps,
// layers and guidance branch, records the exact block attention mass and LSE statistics of
// every head into a CaptureWriter. Other calls run dense attention (runtime/dense_backend.h).
// On CUDA both take the kernels: the dense kernel's output and LSE, the block-mass kernel's mass.
#pragma once

#include <cstdint>
#include <memory>

#include "model/attention_backend.h"
#include "runtime/dense_backend.h"

namespace sparseplan {

class CaptureWriter;
class BlockMassComputer;

class CaptureBackend {
 public:
  // Captures what `writer.info()` names: its steps, layers, branch, grid, text layout, block
  // size and tiles; full LSE when the writer was created with it. chunk_rows: query rows per
  // chunk of the block-mass computation (0: automatic); attention: the CUDA kernels where they
  // run or the float32 reference. The writer must outlive the backend.
  explicit CaptureBackend(CaptureWriter& writer, int64_t chunk_rows = 0,
                          AttentionImpl attention = AttentionImpl::Kernels);
  ~CaptureBackend();
  CaptureBackend(const CaptureBackend&) = delete;
  CaptureBackend& operator=(const CaptureBackend&) = delete;

  // The prompt whose sampling runs next; batch element b of a call is recorded as prompt
  // `prompt + b`.
  void set_prompt(int prompt);

  // Hands the runner this function. It throws std::invalid_argument when a captured call's
  // grid, text layout or head shape differ from the capture's.
  AttentionFn attention();

  // The function's body, for direct use.
  torch::Tensor operator()(const AttentionCall& call, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v);

  bool captures(const AttentionCall& call) const;
  int64_t captured_calls() const { return captured_calls_; }
  // Captured calls per prompt: captured steps x captured layers.
  int64_t calls_per_prompt() const;

 private:
  CaptureWriter& writer_;
  AttentionImpl attention_;
  std::unique_ptr<BlockMassComputer> mass_;
  int prompt_ = 0;
  int64_t captured_calls_ = 0;
};

}  // namespace sparseplan
