#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds, runs CTest (Catch2 cases,
# CLI tests, Python checks of capture files, notebooks), and on request the sanitizer build of
# the Catch2 suite and the fuzz harnesses. GPU tests skip with a printed reason on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
(cd "${BUILD_DIR:-$root/build}" && ctest --output-on-failure -j "$(nproc)" --timeout 1500)
# Memory errors and undefined behaviour that the Release run cannot see: the Catch2 suite under
# ASan + UBSan, and the three parsers fuzzed; each a CPU build of its own (build-asan/, build-fuzz/).
# Not yet timed within CI's 90 minutes, so they run when asked: SPARSEPLAN_SANITIZE=1, SPARSEPLAN_FUZZ=1.
if [[ "${SPARSEPLAN_SANITIZE:-0}" == 1 ]]; then "$root/scripts/sanitize.sh"; fi
if [[ "${SPARSEPLAN_FUZZ:-0}" == 1 ]]; then "$root/scripts/fuzz.sh"; fi
