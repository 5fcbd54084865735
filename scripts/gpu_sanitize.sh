#!/usr/bin/env bash
# Runs the CUDA kernel tests (small shapes: N <= 1100) under compute-sanitizer's memcheck,
# racecheck and synccheck on the GPU machine; runs all three and exits non-zero if any reported an
# error or a test failed under it (the tools change the timing, which can expose races). Build first: scripts/gpu_build.sh sparseplan_kernel_tests.
#   scripts/gpu_sanitize.sh [catch2 test spec]      (default: every [gpu] test)
# Environment: BUILD_DIR (default build-gpu).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tests="${BUILD_DIR:-$root/build-gpu}/tests/sparseplan_kernel_tests"
spec="${1:-[gpu]}"
if [[ ! -x "$tests" ]]; then
  echo "gpu_sanitize: $tests not built: run scripts/gpu_build.sh sparseplan_kernel_tests" >&2
  exit 1
fi
sanitizer="$(command -v compute-sanitizer || true)"
if [[ -z "$sanitizer" ]]; then
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  sanitizer="$(dirname "$(readlink -f "$nvcc")")/compute-sanitizer"
fi
if [[ ! -x "$sanitizer" ]]; then
  echo "gpu_sanitize: compute-sanitizer not found (PATH, next to nvcc)" >&2
  exit 1
fi
failed=()
for tool in memcheck racecheck synccheck; do
  echo "== compute-sanitizer --tool $tool"
  "$sanitizer" --tool "$tool" --error-exitcode 1 "$tests" "$spec" || failed+=("$tool")
done
if ((${#failed[@]})); then
  echo "gpu_sanitize: failed under: ${failed[*]}" >&2
  exit 1
fi
echo "gpu_sanitize: memcheck, racecheck and synccheck clean"
