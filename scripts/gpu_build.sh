#!/usr/bin/env bash
# Builds the project on the GPU machine (Ubuntu, torch 2.11 + CUDA 13, no HDF5/CLI11/json/
# Catch2): unpacks the Debian packages that scripts/fetch_gpu_deps.sh put in .deps/ (carry it)
# into /opt/deps, configures build-gpu/ against the Python torch's LibTorch for sm_90a, and
# builds with ninja. Incremental: a second call in the same session reuses build-gpu/.
#   scripts/gpu_build.sh [targets...]     (default: everything)
# Environment: DEPS_DIR (default .deps), BUILD_DIR (default build-gpu), JOBS (default nproc).
# The carried libraries' folder is baked into the RPATH, so binaries run without LD_LIBRARY_PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps_dir="${DEPS_DIR:-$root/.deps}"
build_dir="${BUILD_DIR:-$root/build-gpu}"
jobs="${JOBS:-$(nproc)}"
prefix=/opt/deps
libdir="$prefix/usr/lib/x86_64-linux-gnu"
hdf5="$libdir/hdf5/serial"

if [[ ! -e "$prefix/.unpacked" ]]; then
  if ! ls "$deps_dir"/*.deb >/dev/null 2>&1; then
    echo "gpu_build: no .deb files in $deps_dir: run scripts/fetch_gpu_deps.sh on the CPU" \
         "machine and carry .deps" >&2
    exit 1
  fi
  mkdir -p "$prefix"
  for f in "$deps_dir"/*.deb; do dpkg -x "$f" "$prefix"; done
  touch "$prefix/.unpacked"
fi
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

python="${PYTHON:-python3}"
torch_dir="$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DSPARSEPLAN_CUDA=ON \
    -DTorch_DIR="$torch_dir" \
    -DPython3_EXECUTABLE="$(command -v "$python")" \
    -DCMAKE_PREFIX_PATH="$prefix/usr" \
    -DHDF5_ROOT="$hdf5" \
    -DHDF5_C_INCLUDE_DIR="$prefix/usr/include/hdf5/serial" \
    -DHDF5_CXX_INCLUDE_DIR="$prefix/usr/include/hdf5/serial" \
    -DHDF5_C_LIBRARY_hdf5="$hdf5/libhdf5.so" \
    -DHDF5_CXX_LIBRARY_hdf5="$hdf5/libhdf5.so" \
    -DHDF5_CXX_LIBRARY_hdf5_cpp="$hdf5/libhdf5_cpp.so" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$libdir -Wl,-rpath,$libdir" \
    -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-rpath-link,$libdir -Wl,-rpath,$libdir"
fi
if (($#)); then
  cmake --build "$build_dir" -j "$jobs" --target "$@"
else
  cmake --build "$build_dir" -j "$jobs"
fi
