#!/usr/bin/env bash
# Writers as a user stops them: SIGINT or SIGTERM during a write exits non-zero, removes the
# temporary file and leaves the previous output untouched; a temporary file left by a writer
# killed outright (SIGKILL) is removed by the next write to the same output.
# $SPARSEPLAN is the binary under test.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
source "$(dirname "$0")/cli_expect.sh"

small=(--grid 8x16x32 --tile 2x4x8 --layers 2 --heads 2 --steps 1 --quiet)
# Long enough (about a second) that the signal arrives while the temporary file is written.
long=(--grid 8x32x64 --tile 2x4x8 --tile 4x4x4 --layers 4 --heads 8 --steps 2 --prompts 2 --quiet)

"$bin" synth-capture --out "$tmp/cap.h5" "${small[@]}" >/dev/null
cp "$tmp/cap.h5" "$tmp/good.h5"

# Starts a long synth-capture over cap.h5 and, once its temporary file exists, sends SIGNAL.
# Sets `code` to its exit status.
interrupt_capture() {
  local sig=$1
  "$bin" synth-capture --out "$tmp/cap.h5" "${long[@]}" >"$tmp/$sig.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    [ -e "$tmp/cap.h5.tmp-$pid" ] && break
    sleep 0.05
  done
  sleep 0.05
  kill "-$sig" "$pid"
  wait "$pid"
  code=$?
}

for sig in TERM INT; do
  interrupt_capture "$sig"
  check "SIG$sig during a write exits non-zero" test "$code" -ne 0
  check "SIG$sig during a write says what it removed" grep -q "interrupted (SIG$sig): removed the unfinished file $tmp/cap.h5.tmp-" "$tmp/$sig.log"
  check "SIG$sig during a write leaves no temporary file" test -z "$(ls "$tmp" | grep 'cap.h5.tmp-')"
  check "SIG$sig during a write leaves the old output untouched" cmp -s "$tmp/cap.h5" "$tmp/good.h5"
done

# SIGKILL: nothing can clean up, so the next write to the same output does.
"$bin" synth-capture --out "$tmp/cap.h5" "${long[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -e "$tmp/cap.h5.tmp-$pid" ] && break
  sleep 0.05
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
check "a killed writer leaves its temporary file" test -e "$tmp/cap.h5.tmp-$pid"
check "a killed writer leaves the old output untouched" cmp -s "$tmp/cap.h5" "$tmp/good.h5"
expect "the next write succeeds" 0 "wrote" -- "$bin" synth-capture --out "$tmp/cap.h5" "${small[@]}"
check "the next write removes the dead writer's temporary file" test ! -e "$tmp/cap.h5.tmp-$pid"

# The same for a plan: a temporary file of a process that no longer exists.
dead=$(sh -c 'echo $$')
echo "half a plan" >"$tmp/plan.json.tmp-$dead"
expect "search writes its plan" 0 "wrote $tmp/plan.json" -- "$bin" search "$tmp/cap.h5" --recall 0.9 --out "$tmp/plan.json" --quiet
check "search removes a dead writer's temporary plan" test ! -e "$tmp/plan.json.tmp-$dead"
check "search leaves no temporary file of its own" test -z "$(ls "$tmp" | grep 'plan.json.tmp-')"

finish "cli interrupt tests"
