#!/usr/bin/env bash
# Compensation of dropped blocks (plan `compensation`) against the same plans without it, on
# wan-mini: capture the calibration prompts, search recall plans and make sliding-tile and radial
# baselines, add a twin of each per entry of COMPENSATIONS, and evaluate all of them against
# dense sampling on the held-out prompts and seeds at several dense warm-ups. COMPENSATIONS:
# `pooled_kv`, `residual_cache` (refreshed at the last warm-up step only) and `residual_cache/K`
# (also refreshed every K steps). Tables land in $OUT_DIR.
#   DEVICE=cuda bash bench/compensation.sh                  (GPU machine)
#   GRID=4,32,32 STEPS=6 RECALLS=0.7 bash bench/compensation.sh  (a quick CPU smoke run)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SPARSEPLAN_BIN:-$root/build/cli/sparseplan}"
model="${SPARSEPLAN_MODEL:-$root/../shared/fixtures/wan-mini}"
out="${OUT_DIR:-$root/out/compensation}"
device="${DEVICE:-cpu}"
steps="${STEPS:-30}"
grid="${GRID:-16,64,64}"
recalls="${RECALLS:-0.5 0.7 0.8 0.9 0.95}"
warmups="${WARMUPS:-0,3,6}"
compensations="${COMPENSATIONS:-pooled_kv residual_cache residual_cache/5}"
python="${PYTHON:-python3}"
IFS=, read -r f h w <<<"$grid"
tgrid="$f,$((h / 4)),$((w / 4))"
mkdir -p "$out"
start=$SECONDS
stage() { echo; echo "== [$((SECONDS - start)) s] $*"; }

stage "capture the calibration prompts"
"$bin" capture --model "$model" --prompts "$root/configs/prompts/wan-mini-search.txt" \
  --frames "$f" --height "$h" --width "$w" --steps "$steps" --seed 1 --device "$device" \
  --tiles 4x4x4 --out "$out/calib.h5"

stage "recall plans and baselines"
plans=()
for r in $recalls; do
  "$bin" search "$out/calib.h5" --recall "$r" --tile 4x4x4 --quiet --out "$out/recall$r.json"
  plans+=("$out/recall$r.json")
done
"$bin" baseline --kind sliding-tile --model wan-mini --grid "$tgrid" --tile 4,4,4 --window 3,3,3 \
  --steps "$steps" --warmup 0 --out "$out/sliding-tile-3x3x3.json"
"$bin" baseline --kind sliding-tile --model wan-mini --grid "$tgrid" --tile 4,4,4 --window 2,3,3 \
  --steps "$steps" --warmup 0 --out "$out/sliding-tile-2x3x3.json"
"$bin" baseline --kind radial --model wan-mini --grid "$tgrid" --tile 4,4,4 \
  --steps "$steps" --warmup 0 --out "$out/radial.json"
plans+=("$out/sliding-tile-3x3x3.json" "$out/sliding-tile-2x3x3.json" "$out/radial.json")

stage "twins: $compensations"
all=()
for p in "${plans[@]}"; do
  all+=("$p")
  for c in $compensations; do
    twin="${p%.json}-${c/\//-every}.json"
    "$python" - "$p" "$twin" "$c" "$steps" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
kind, _, every = sys.argv[3].partition("/")
plan["compensation"] = kind
if every:
    plan["schedule"]["refresh_steps"] = list(range(int(every), int(sys.argv[4]), int(every)))
plan["description"] = plan.get("description", "") + " + " + sys.argv[3]
json.dump(plan, open(sys.argv[2], "w"))
PY
    all+=("$twin")
  done
done

stage "evaluate on the held-out prompts"
"$bin" evaluate "${all[@]}" --model "$model" --prompts "$root/configs/prompts/wan-mini-heldout.txt" \
  --seeds 7,8 --video "$grid" --steps "$steps" --device "$device" --warmup "$warmups" --floor \
  --quiet --out "$out/eval"
stage "done"
