#!/usr/bin/env bash
# Installs what sparseplan builds and tests with on Debian 12: compilers and CMake, LibTorch
# (CPU), HDF5, CLI11, nlohmann/json, Catch2, Eigen, zlib, and the Python packages of
# requirements.txt (h5py for capture checks, Jupyter for the notebooks). Skips what is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# libopenblas0-pthread: Debian's LibTorch calls the system BLAS, and the reference BLAS it gets
# otherwise is about 20x slower for the model's matrix products.
# clang, libclang-rt-14-dev (libFuzzer and the sanitizer runtimes; only recommended by clang, so
# not pulled in by --no-install-recommends) and llvm (llvm-symbolizer, for readable sanitizer
# stacks): the fuzz harnesses (scripts/fuzz.sh).
packages=(build-essential cmake g++ libtorch-dev libhdf5-dev libcli11-dev nlohmann-json3-dev
          catch2 libeigen3-dev zlib1g-dev libopenblas0-pthread python3 python3-pip python3-torch
          clang libclang-rt-14-dev llvm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "install_deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! python3 -c "import h5py, numpy, matplotlib, nbclient, nbformat, ipykernel, jsonschema" 2>/dev/null; then
  echo "install_deps: installing Python packages from requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      -r "$root/requirements.txt"
fi
