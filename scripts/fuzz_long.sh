#!/usr/bin/env bash
# A long fuzzing run for bench/RESULTS.md (issue 14): one harness of fuzz/, PROCESSES processes
# (libFuzzer -fork: the jobs share one growing corpus, and a crash, out-of-memory or timeout is
# saved as an artifact while the run goes on), for SECONDS. Prints the total executions, the rate,
# the corpus size and the crash / out-of-memory / timeout counts; exits 1 when any was found.
# It only runs a harness, so it works where clang is missing: a harness built by scripts/fuzz.sh
# can be carried to a machine with more cores (fuzz/README.md).
#   scripts/fuzz_long.sh HARNESS PARSER SECONDS [PROCESSES]
#     HARNESS   a built harness, e.g. build-fuzz/fuzz/fuzz_capture
#     PARSER    plan, safetensors or capture: the seeds are fuzz/corpus/PARSER
#     PROCESSES default: the number of cores
# Environment: FUZZ_OUT (default build-fuzz/long-PARSER): the grown corpus (corpus/), the
# artifacts (artifacts/) and the log (fuzz.log); FUZZ_SEED, libFuzzer's -seed (default 0).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if (($# < 3)); then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
harness=$1 parser=$2 seconds=$3 processes=${4:-$(nproc)}
seeds="$root/fuzz/corpus/$parser"
[[ -d "$seeds" ]] || { echo "fuzz_long: no seed corpus $seeds" >&2; exit 2; }
[[ -x "$harness" ]] || { echo "fuzz_long: $harness is not an executable" >&2; exit 2; }
out="${FUZZ_OUT:-$root/build-fuzz/long-$parser}"
mkdir -p "$out/corpus" "$out/artifacts"
log="$out/fuzz.log"

# The same limits and options as scripts/fuzz.sh, so an input that fails here fails there.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
max_len=()
[[ "$parser" == plan ]] && max_len=(-max_len=8192)
start=$SECONDS
echo "fuzz_long: $(basename "$harness"), $processes processes, $seconds s; log $log"
# After -max_total_time libFuzzer starts no new job but waits for the running ones, and job k
# runs for up to min(300, k) seconds; the hard stop (SIGINT to all jobs, counted up to their last
# report) keeps the run within 1.25 x SECONDS, so it fits a machine lent for a fixed time.
timeout -s INT -k 20 $((seconds + seconds / 4)) "$harness" -fork="$processes" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
  -max_total_time="$seconds" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 \
  -dict="$root/fuzz/json.dict" "${max_len[@]}" -artifact_prefix="$out/artifacts/" \
  "$out/corpus" "$seeds" >"$log" 2>&1 || true
elapsed=$((SECONDS - start))

# Fork mode prints, after each job, "#RUNS: cov: C ft: F corp: N exec/s R oom/timeout/crash:
# O/T/X time: Ss job: J ...", counted over all jobs.
last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
if [[ -z "$last" ]]; then
  echo "fuzz_long: no job finished; the end of the log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
corpus=$(sed -E 's/.* corp: ([0-9]+).*/\1/' <<<"$last")
read -r ooms timeouts crashes < <(sed -E 's|.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*|\1 \2 \3|' <<<"$last")
echo "fuzz_long: $runs executions in $elapsed s ($((runs / (elapsed > 0 ? elapsed : 1))) exec/s" \
     "over $processes processes), corpus $corpus inputs"
echo "fuzz_long: crashes $crashes, out-of-memory $ooms, timeouts $timeouts; artifacts in $out/artifacts"
ls -1 "$out/artifacts"
((crashes + ooms + timeouts == 0))
