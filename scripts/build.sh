#!/usr/bin/env bash
# Configures and builds into build/ (CUDA kernels too when nvcc is found) against the torch of
# the virtual environment (scripts/torch_env.sh). Incremental. No ccache: objects cached across
# worktrees once linked a stale one (DEVELOPERS.md).
# Environment: BUILD_DIR (default build/), VENV (default .venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
source "$root/scripts/torch_env.sh"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${torch_cmake_args[@]}"
fi
cmake --build "$build" -j "$(nproc)"
