#!/usr/bin/env bash
# The main job on the embedded default model (wan-mini, or $SPARSEPLAN_MODEL): generate a video
# densely, capture attention on a few prompts, analyze the captures, search a plan for a recall
# target, score it against the fixed baselines on held-out prompts and seeds, draw its masks,
# and generate the same video with the plan. Everything goes to $OUT_DIR (out/main-job).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SPARSEPLAN_BIN:-$root/build/cli/sparseplan}"
model="${SPARSEPLAN_MODEL:-$root/../shared/fixtures/wan-mini}"
out="${OUT_DIR:-$root/out/main-job}"
steps="${STEPS:-30}"                  # sampling steps of the generated videos
capture_steps="${CAPTURE_STEPS:-10}"  # sampling steps of the captured runs (5 of them captured)
device="${DEVICE:-cpu}"
recall="${RECALL:-0.9}"
prompt="bg-checker bgcolor-black pan-up green square move-down large"
mkdir -p "$out"
run() {
  echo
  echo "== sparseplan $*"
  "$bin" "$@"
}

run generate --model "$model" --prompt "$prompt" --steps "$steps" --seed 1 --device "$device" \
  --out "$out/dense"
run capture --model "$model" --prompts "$root/configs/prompts/wan-mini-search.txt" --steps "$capture_steps" \
  --seed 1 --device "$device" --out "$out/search.h5"
run capture --model "$model" --prompts "$root/configs/prompts/wan-mini-heldout.txt" --steps "$capture_steps" \
  --seed 7 --device "$device" --out "$out/heldout.h5"
run analyze "$out/search.h5" --out "$out/report"
run search "$out/search.h5" --recall "$recall" --out "$out/plan.json"
run validate "$out/plan.json"
run compare "$out/plan.json" --captures "$out/heldout.h5" --baselines
run layout "$out/plan.json" --png "$out/plan-mask.png" --svg "$out/plan-mask.svg" --layer 0 --head 0
run generate --model "$model" --prompt "$prompt" --steps "$steps" --seed 1 --plan "$out/plan.json" \
  --device "$device" --out "$out/sparse"
echo
echo "main job done: video $out/dense/video.gif (dense) and $out/sparse/video.gif (plan)," \
  "report $out/report/index.html, plan $out/plan.json"
