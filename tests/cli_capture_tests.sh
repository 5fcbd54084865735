#!/usr/bin/env bash
# `sparseplan capture` as a user runs it: bad arguments exit 1 naming the problem before any
# model work, and an interrupted capture leaves no file that looks complete.
# $SPARSEPLAN is the binary under test; $WAN_MINI the wan-mini fixture directory.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
model=${WAN_MINI:?set WAN_MINI to the wan-mini fixture directory}
source "$(dirname "$0")/cli_expect.sh"



prompt="bg-solid bgcolor-black pan-still red circle move-right large"
small=(--frames 4 --height 32 --width 32 --steps 2)
out=$tmp/run.h5

expect "capture needs a model" 1 "--model is required" -- "$bin" capture --prompt "$prompt" --out "$out"
expect "capture needs an output" 1 "--out is required" -- "$bin" capture --model "$model" --prompt "$prompt"
expect "capture needs a prompt" 1 "exactly one of --prompt, --prompts or --context" -- "$bin" capture --model "$model" --out "$out"
echo "$prompt" >"$tmp/prompts.txt"
expect "capture takes one prompt source" 1 "exactly one of" -- "$bin" capture --model "$model" --prompt "$prompt" --prompts "$tmp/prompts.txt" --out "$out"
expect "capture reports a missing model directory" 1 "not a directory" -- "$bin" capture --model "$tmp/none" --prompt "$prompt" --out "$out"
expect "capture reports a missing prompts file" 1 "cannot open" -- "$bin" capture --model "$model" --prompts "$tmp/none.txt" --out "$out"
: >"$tmp/empty.txt"
expect "capture reports an empty prompts file" 1 "no prompt in the file" -- "$bin" capture --model "$model" --prompts "$tmp/empty.txt" --out "$out"
expect "capture reports an unknown prompt word" 1 "flying-saucer" -- "$bin" capture --model "$model" --prompt "flying-saucer" "${small[@]}" --out "$out"
expect "capture rejects a capture step past the last step" 1 "is not below --steps 2" -- "$bin" capture --model "$model" --prompt "$prompt" "${small[@]}" --capture-steps 0,2 --out "$out"
expect "capture rejects a malformed step list" 1 "--capture-steps" -- "$bin" capture --model "$model" --prompt "$prompt" "${small[@]}" --capture-steps 0,x --out "$out"
expect "capture rejects a layer the model lacks" 1 "the model has 8" -- "$bin" capture --model "$model" --prompt "$prompt" "${small[@]}" --layers 0,8 --out "$out"
expect "capture rejects a malformed tile" 1 "expected TFxTHxTW" -- "$bin" capture --model "$model" --prompt "$prompt" "${small[@]}" --tiles 4x4 --out "$out"
expect "capture rejects a tile larger than the grid" 1 "larger than the grid" -- "$bin" capture --model "$model" --prompt "$prompt" "${small[@]}" --tiles 8x4x4 --out "$out"
expect "capture rejects a size that is not a multiple of the patch" 1 "multiples of the patch size" -- "$bin" capture --model "$model" --prompt "$prompt" --frames 4 --height 30 --width 32 --out "$out"
expect "capture rejects zero steps" 1 "--steps must be >= 1" -- "$bin" capture --model "$model" --prompt "$prompt" --steps 0 --out "$out"
expect "capture rejects an unknown device" 1 "--device must be cpu or cuda" -- "$bin" capture --model "$model" --prompt "$prompt" --device tpu --out "$out"
expect "capture rejects an unknown branch" 1 "--branch must be cond or uncond" -- "$bin" capture --model "$model" --prompt "$prompt" --branch both --out "$out"
expect "capture rejects an output directory that does not exist" 1 "does not exist" -- "$bin" capture --model "$model" --prompt "$prompt" --out "$tmp/no/such/run.h5"
expect "capture rejects a non-numeric option" nonzero "--frames" -- "$bin" capture --model "$model" --prompt "$prompt" --frames many --out "$out"
expect "merge needs two captures" 1 "at least two captures" -- "$bin" capture --merge "$tmp/a.h5" --out "$out"
echo "not hdf5" >"$tmp/a.h5"
echo "not hdf5" >"$tmp/b.h5"
expect "merge reports a file that is not HDF5" 1 "not an HDF5 file" -- "$bin" capture --merge "$tmp/a.h5" "$tmp/b.h5" --out "$out"
check "no output after failed runs" test ! -e "$out"

expect "capture of a small video succeeds" 0 "wrote $out" -- "$bin" capture --model "$model" --prompts "$tmp/prompts.txt" "${small[@]}" --tiles 4x4x4 --out "$out"
check "the output is in place" test -s "$out"

# Interrupted with Ctrl-C (SIGINT): exits non-zero, removes its temporary file, no output.
"$bin" capture --model "$model" --prompt "$prompt" --frames 8 --height 64 --width 64 --steps 50 \
  --out "$tmp/int.h5" >"$tmp/int.log" 2>&1 &
pid=$!
# Once the temporary file exists the capture is under way and handles the signal.
for _ in $(seq 600); do
  ls "$tmp" | grep -q 'int.h5.tmp-' && break
  sleep 0.1
done
sleep 1
kill -INT "$pid"
wait "$pid"
code=$?
check "an interrupted capture exits non-zero" test "$code" -ne 0
check "an interrupted capture says so" grep -q "interrupted" "$tmp/int.log"
check "an interrupted capture leaves no output" test ! -e "$tmp/int.h5"
check "an interrupted capture removes its temporary file" test -z "$(ls "$tmp" | grep 'int.h5.tmp-')"

# Killed outright (SIGKILL): the output never appears; only a file named .tmp-PID remains.
"$bin" capture --model "$model" --prompt "$prompt" --frames 8 --height 64 --width 64 --steps 50 \
  --out "$tmp/kill.h5" >/dev/null 2>&1 &
pid=$!
sleep 3
kill -KILL "$pid"
wait "$pid" 2>/dev/null
check "a killed capture leaves no output" test ! -e "$tmp/kill.h5"

finish "cli_capture_tests"
