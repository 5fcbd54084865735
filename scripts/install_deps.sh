#!/usr/bin/env bash
# Installs what sparseplan builds and tests with on Debian 12: compilers, CMake and Ninja, HDF5,
# CLI11, nlohmann/json, Catch2, Eigen, zlib and Python's venv and headers from apt; then the
# virtual environment .venv/ (git-ignored) with torch 2.11.0 (the PyPI wheel: LibTorch for the
# C++ build too, the same torch as the GPU machine), diffusers and the Python packages of
# requirements.txt. Skips what is there. Environment: VENV (default <repo>/.venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
# clang, libclang-rt-14-dev (libFuzzer and the sanitizer runtimes; only recommended by clang, so
# not pulled in by --no-install-recommends) and llvm (llvm-symbolizer, for readable sanitizer
# stacks): the fuzz harnesses (scripts/fuzz.sh).
packages=(build-essential cmake ninja-build g++ libhdf5-dev libcli11-dev nlohmann-json3-dev
          catch2 libeigen3-dev zlib1g-dev python3 python3-venv python3-dev
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
# Debian's own interpreter: its headers (python3-dev) are the ones the extension compiles with.
if [ ! -x "$venv/bin/python" ]; then
  echo "install_deps: creating $venv"
  /usr/bin/python3 -m venv "$venv"
fi
if ! "$venv/bin/python" - "$root/requirements.txt" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        r = Requirement(line)
        assert r.specifier.contains(version(r.name), prereleases=True), r
PY
then
  echo "install_deps: installing the Python packages of requirements.txt into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt"
fi
