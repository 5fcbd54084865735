#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds, runs CTest (Catch2 cases,
# CLI tests, Python checks of capture files, notebooks), then the fuzz harnesses and the Catch2
# suite under the sanitizers. GPU tests skip with a printed reason on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
(cd "${BUILD_DIR:-$root/build}" && ctest --output-on-failure -j "$(nproc)" --timeout 1500)
# Memory errors and undefined behaviour that the Release run cannot see: the three parsers
# fuzzed (build-fuzz/), then the Catch2 suite under ASan + UBSan (build-asan/). On the 2-core
# machine the whole script took about 58 minutes of CI's 90: build 12.5, CTest 22.3, fuzzing
# 5, sanitizer build 13.3 and run 2.1 (bench/RESULTS.md, "The CI run, timed").
# SPARSEPLAN_FUZZ=0 and SPARSEPLAN_SANITIZE=0 leave them out.
if [[ "${SPARSEPLAN_FUZZ:-1}" != 0 ]]; then "$root/scripts/fuzz.sh"; fi
if [[ "${SPARSEPLAN_SANITIZE:-1}" != 0 ]]; then "$root/scripts/sanitize.sh"; fi
