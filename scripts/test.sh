#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds, runs CTest (Catch2 cases,
# CLI tests, Python checks of capture files, notebooks), then the fuzz harnesses and the
# sanitizer build of the Catch2 suite. GPU tests skip with a printed reason on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
(cd "${BUILD_DIR:-$root/build}" && ctest --output-on-failure -j "$(nproc)" --timeout 1500)
# Memory errors and undefined behaviour that the Release run cannot see: the three parsers
# fuzzed, then the Catch2 suite under ASan + UBSan; each a CPU build of its own (build-fuzz/,
# build-asan/). By their CPU times here they add ~36 min, within CI's 90 beside the Release build,
# CTest and the torch download (an estimate, not a CI run: bench/RESULTS.md,
# "Fuzzing and sanitizers in CI"); SPARSEPLAN_FUZZ=0 or SPARSEPLAN_SANITIZE=0 leaves one out.
if [[ "${SPARSEPLAN_FUZZ:-1}" != 0 ]]; then "$root/scripts/fuzz.sh"; fi
if [[ "${SPARSEPLAN_SANITIZE:-1}" != 0 ]]; then "$root/scripts/sanitize.sh"; fi
