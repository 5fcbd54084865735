#!/usr/bin/env bash
# Configures and builds into build/ (CUDA kernels too when nvcc is found) against the torch of
# the virtual environment (.venv, made by scripts/install_deps.sh): Torch_DIR is that torch's own
# CMake folder, so a system LibTorch cannot shadow it. Incremental.
# Environment: BUILD_DIR (default build/), VENV (default .venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
python="${VENV:-$root/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "build: $python not found; run scripts/install_deps.sh first" >&2
  exit 1
fi
# torch's CMake configuration (a CUDA build) needs the CUDA toolkit even when the kernels are off.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  torch_dir="$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" \
    -DTorch_DIR="$torch_dir" -DPython3_EXECUTABLE="$python"
fi
cmake --build "$build" -j "$(nproc)"
