#!/usr/bin/env bash
# Fuzzing in CI (issue 14): builds the libFuzzer harnesses of fuzz/ into build-fuzz/ (clang,
# ASan + UBSan, CUDA off, only the plan and io libraries), replays the committed seed corpus,
# then fuzzes each parser for a fixed number of runs from a fixed seed, so a CI run is
# reproducible. New inputs go to a scratch folder, crashes to build-fuzz/artifacts/.
#   FUZZ_RUNS_PLAN / FUZZ_RUNS_SAFETENSORS / FUZZ_RUNS_CAPTURE  runs per parser (about 60 s each
#                                                               on the 2-core CI machine)
#   FUZZ_SEED  libFuzzer's -seed (default 1); FUZZ_PARSERS  which ones (default all three)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
parsers=(${FUZZ_PARSERS:-plan safetensors capture})
declare -A runs=([plan]="${FUZZ_RUNS_PLAN:-150000}" [safetensors]="${FUZZ_RUNS_SAFETENSORS:-150000}"
                 [capture]="${FUZZ_RUNS_CAPTURE:-8000}")

source "$root/scripts/torch_env.sh"
start=$SECONDS
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DSPARSEPLAN_FUZZ=ON -DSPARSEPLAN_CUDA=OFF -DBUILD_TESTING=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -G Ninja "${torch_cmake_args[@]}" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_C_FLAGS_DEBUG="-O1 -g"
fi
cmake --build "$build" -j "$(nproc)" --target "${parsers[@]/#/fuzz_}"
echo "fuzz: harnesses built in $((SECONDS - start)) s"

# Leaks and allocations over -rss_limit_mb fail the run like crashes do.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
artifacts="$build/artifacts"
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0 failed=0
check() {  # name, then the command
  local name=$1 log="$scratch/$1.log" t=$SECONDS
  shift
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "fuzz: $name passed ($(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1), $((SECONDS - t)) s)"
  else
    failed=$((failed + 1))
    echo "fuzz: $name FAILED ($((SECONDS - t)) s); the end of its log:"
    tail -n 60 "$log"
  fi
}
for parser in "${parsers[@]}"; do
  harness="$build/fuzz/fuzz_$parser"
  corpus="$root/fuzz/corpus/$parser"
  options=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/$parser-"
           -dict="$root/fuzz/json.dict")
  check "$parser-corpus" "$harness" "${options[@]}" -runs=0 "$corpus"
  # Mutating the 30-60 KB configs plans whole would slow the plan runs tenfold; 8 KB holds
  # every plan structure the loader checks.
  max_len=()
  [ "$parser" = plan ] && max_len=(-max_len=8192)
  mkdir -p "$scratch/$parser"
  check "$parser-fuzz" "$harness" "${options[@]}" "${max_len[@]}" -seed="${FUZZ_SEED:-1}" \
    -runs="${runs[$parser]}" "$scratch/$parser" "$corpus"
done
echo "fuzz: total $((SECONDS - start)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
