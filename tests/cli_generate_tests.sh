#!/usr/bin/env bash
# sparseplan generate as a user runs it: a tiny real generation writes the three outputs, and bad
# arguments exit non-zero with a message naming the problem and write nothing.
# $SPARSEPLAN is the binary under test, $WAN_MINI the wan-mini fixture directory.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
model=${WAN_MINI:?set WAN_MINI to the wan-mini directory}
source "$(dirname "$0")/cli_expect.sh"



prompt="bg-stripes bgcolor-blue pan-right red circle move-left large"
gen() { "$bin" generate --model "$model" "$@"; }

expect "a small generation succeeds" 0 "video.gif" -- gen --prompt "$prompt" --frames 2 --height 16 --width 16 --steps 2 --out "$tmp/ok"
check "generate writes a GIF" test -s "$tmp/ok/video.gif"
check "generate writes a contact sheet" test -s "$tmp/ok/frames.png"
check "generate writes the raw tensor" test -s "$tmp/ok/video.safetensors"
check "the GIF starts with its signature" test "$(head -c 6 "$tmp/ok/video.gif")" = GIF89a
expect "the same seed gives the same video" 0 "video.gif" -- gen --prompt "$prompt" --frames 2 --height 16 --width 16 --steps 2 --out "$tmp/again"
check "the same seed gives identical files" cmp -s "$tmp/ok/video.safetensors" "$tmp/again/video.safetensors"

small=(--frames 2 --height 16 --width 16 --steps 2)
expect "generate ends with a profile of its attention calls" 0 "dense: 32 calls" -- gen --prompt "$prompt" "${small[@]}" --out "$tmp/prof"
expect "--profile prints the time of every step" 0 "step   1" -- gen --prompt "$prompt" "${small[@]}" --profile --attention reference --out "$tmp/prof2"
check "generate.json holds the steps and the dense calls with their time" python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
p = j['profile']
assert len(p['step_seconds']) == 2 and p['timed']
assert p['dense']['calls'] == 32 and p['dense']['seconds'] > 0 and p['sparse']['calls'] == 0
assert 0 < p['attention_share'] < 1 and j['attention'] == 'kernels'
assert j['token_order'] == 'model'  # the tile-major stream is for the CUDA kernels
assert j['query_pairs'] == 'plan'
" "$tmp/prof/generate.json"
expect "an unknown attention implementation is a usage error" 105 "--attention" -- gen --prompt "$prompt" --attention fast --out "$tmp/a"
expect "an unknown token order is a usage error" 105 "--token-order" -- gen --prompt "$prompt" --token-order tiles --out "$tmp/a"
expect "an unknown query pairing is a usage error" 105 "--query-pairs" -- gen --prompt "$prompt" --query-pairs any --out "$tmp/a"
expect "an unknown word is named" 1 "'purple'" -- gen --prompt "bg-solid purple circle" "${small[@]}" --out "$tmp/a"
expect "a size off the patch grid is rejected" 1 "multiples of the patch size" -- gen --prompt "$prompt" --frames 2 --height 18 --width 16 --out "$tmp/a"
expect "zero steps are rejected" 1 "--steps must be >= 1" -- gen --prompt "$prompt" --steps 0 --out "$tmp/a"
expect "a non-positive shift is rejected" 1 "--shift must be > 0" -- gen --prompt "$prompt" --shift 0 --out "$tmp/a"
expect "a negative guidance is rejected" 1 "--guidance must be >= 0" -- gen --prompt "$prompt" --guidance -1 --out "$tmp/a"
expect "a negative seed is rejected" 1 "--seed must be >= 0" -- gen --prompt "$prompt" --seed -3 --out "$tmp/a"
expect "a missing model directory is named" 1 "--model $tmp/nomodel: not a directory" -- "$bin" generate --model "$tmp/nomodel" --prompt "$prompt" --out "$tmp/a"
expect "a prompt or context is required" 1 "exactly one of --prompt and --context" -- gen --out "$tmp/a"
expect "--out is required" 1 "--out is required" -- gen --prompt "$prompt"
touch "$tmp/file"
expect "--out that is a file is rejected" 1 "exists and is not a directory" -- gen --prompt "$prompt" --out "$tmp/file"
expect "an unknown device is a usage error" 105 "--device" -- gen --prompt "$prompt" --device tpu --out "$tmp/a"
expect "a non-numeric frame count is a usage error" 104 "--frames" -- gen --prompt "$prompt" --frames many --out "$tmp/a"
expect "a missing context file is named" 1 "$tmp/none.safetensors" -- gen --context "$tmp/none.safetensors" --out "$tmp/a"
check "failed runs write no output directory" test ! -e "$tmp/a"

mkdir -p "$tmp/broken"
cp "$model/config.json" "$model/text_encoder.safetensors" "$model"/diffusion_pytorch_model* "$tmp/broken/"
shard="$tmp/broken/diffusion_pytorch_model-00002-of-00003.safetensors"
chmod u+w "$shard"
truncate -s 1000000 "$shard"
expect "a truncated shard is reported" 1 "diffusion_pytorch_model-00002-of-00003.safetensors: corrupt safetensors file" -- "$bin" generate --model "$tmp/broken" --prompt "$prompt" "${small[@]}" --out "$tmp/b"
rm "$shard"
expect "a missing shard is reported" 1 "shard diffusion_pytorch_model-00002-of-00003.safetensors" -- "$bin" generate --model "$tmp/broken" --prompt "$prompt" "${small[@]}" --out "$tmp/b"

finish "cli_generate_tests"
