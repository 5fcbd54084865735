#!/usr/bin/env bash
# The Catch2 suite under AddressSanitizer and UndefinedBehaviorSanitizer (issue 14): a CPU build
# of its own in build-asan/ (-O1, CUDA off) that builds only sparseplan_tests and the libraries
# it links, then runs it. Any sanitizer report fails the run. SANITIZE_TESTS passes a Catch2 test
# spec, e.g. SANITIZE_TESTS='-# ~[#test_wan_model]' leaves out the wan-mini model tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ASAN_BUILD_DIR:-$root/build-asan}"
source "$root/scripts/torch_env.sh"
start=$SECONDS
# LibTorch and OpenBLAS keep allocations alive until exit on purpose; the leak checker would
# report them at the end of every run, test discovery included.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# -g1: line tables only, enough for the sanitizer reports' stacks; full debug information of
# the torch templates doubled the compile time of a test file (70 s against 36 s).
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DSPARSEPLAN_SANITIZE=ON -DSPARSEPLAN_CUDA=OFF -G Ninja "${torch_cmake_args[@]}" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DCMAKE_C_FLAGS_DEBUG="-O1 -g1"
fi
cmake --build "$build" -j "$(nproc)" --target sparseplan_tests
echo "sanitize: sparseplan_tests built in $((SECONDS - start)) s"
t=$SECONDS
# shellcheck disable=SC2086  # SANITIZE_TESTS is a list of arguments
"$build/tests/sparseplan_tests" --durations no ${SANITIZE_TESTS:-}
echo "sanitize: sparseplan_tests under ASan + UBSan passed in $((SECONDS - t)) s (total $((SECONDS - start)) s)"
