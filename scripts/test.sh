#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds, runs CTest (Catch2 cases,
# CLI tests, Python checks of capture files, notebooks). GPU tests skip with a printed reason
# on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" --timeout 1500
