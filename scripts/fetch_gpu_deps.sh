#!/usr/bin/env bash
# Run on a CPU machine with apt: downloads the Debian packages that the GPU machine lacks (HDF5
# C/C++, CLI11, nlohmann/json, Catch2) into .deps/ (git-ignored), and copies the wan-mini
# fixtures into .fixtures/, so that a device call can carry both. libcurl is deliberately not
# fetched: the GPU machine's own is used and a carried one breaks the link.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps"
packages=(libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libhdf5-hl-cpp-100 libsz2
          libaec0 libaec-dev libcli11-dev nlohmann-json3-dev catch2)
missing=()
for p in "${packages[@]}"; do
  ls "$deps/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  (cd "$deps" && apt-get download "${missing[@]}") || {
    apt-get update -qq && (cd "$deps" && apt-get download "${missing[@]}")
  }
fi
echo "debs in $deps: $(ls "$deps"/*.deb | wc -l)"
fixtures="$root/../shared/fixtures/wan-mini"
if [[ -d "$fixtures" ]]; then
  mkdir -p "$root/.fixtures"
  cp -ru "$fixtures" "$root/.fixtures/"
  echo "fixtures copied to $root/.fixtures/wan-mini"
fi
