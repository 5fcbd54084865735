#!/usr/bin/env bash
# The fidelity benchmark of issue 10 on wan-mini: for each grid (16x64x64 and 24x80x80 pixels,
# 30 steps, guidance 5), capture the calibration prompts, search recall plans, calibrate a plan
# for PSNR >= 30 dB and plans for three attention-time levels, then evaluate everything against
# dense sampling on held-out prompts and seeds: calibrated plans, `search --recall` plans and the
# sliding-tile / radial / spatial-temporal / oracle top-k baselines, each baseline and recall plan at several
# dense warm-ups; plus the bf16-weights noise floor. Tables land in $OUT_DIR/<grid>/.
#   DEVICE=cuda PARALLEL=1 bash bench/fidelity.sh  (GPU machine)
#   GRIDS="4,32,32" STEPS=6 bash bench/fidelity.sh  (a quick CPU smoke run)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SPARSEPLAN_BIN:-$root/build/cli/sparseplan}"
model="${SPARSEPLAN_MODEL:-$root/../shared/fixtures/wan-mini}"
out="${OUT_DIR:-$root/out/fidelity}"
device="${DEVICE:-cpu}"
steps="${STEPS:-30}"
grids="${GRIDS:-16,64,64 24,80,80}"
target_psnr="${TARGET_PSNR:-30}"
time_levels="${TIME_LEVELS:-0.3 0.5 0.7}"
warmups="${WARMUPS:-0,3,6,9}"
calib_prompts="$root/configs/prompts/wan-mini-search.txt"
heldout_prompts="$root/configs/prompts/wan-mini-heldout.txt"
calib_seeds="${CALIB_SEEDS:-1}"
heldout_seeds="${HELDOUT_SEEDS:-7,8}"
# Baselines and recall plans evaluated at every warm-up, in parallel pairs (EVAL_PAIRS="" skips
# them, e.g. when their rows are already measured).
eval_pairs="${EVAL_PAIRS-sliding-tile-3x3x3,sliding-tile-2x3x3 radial,spatial-temporal oracle-topk0.2,oracle-topk0.4 recall0.9,recall0.95}"
start=$SECONDS
stage() { echo; echo "== [$((SECONDS - start)) s] $*"; }

for grid in $grids; do
  IFS=, read -r f h w <<<"$grid"
  tgrid="$f,$((h / 4)),$((w / 4))"
  dir="$out/${f}x${h}x${w}"
  mkdir -p "$dir"
  common=(--model "$model" --video "$grid" --steps "$steps" --device "$device" --quiet)

  stage "$grid: capture the calibration prompts"
  "$bin" capture --model "$model" --prompts "$calib_prompts" --frames "$f" --height "$h" --width "$w" \
    --steps "$steps" --seed "${calib_seeds%%,*}" --device "$device" --tiles 4x4x4,2x4x8,1x8x8 \
    --out "$dir/calib.h5"

  stage "$grid: search --recall plans (as today)"
  for r in 0.9 0.95; do
    "$bin" search "$dir/calib.h5" --recall "$r" --quiet --out "$dir/recall$r.json"
  done

  stage "$grid: baselines"
  "$bin" baseline --kind sliding-tile --model wan-mini --grid "$tgrid" --tile 4,4,4 --window 3,3,3 \
    --steps "$steps" --warmup 0 --out "$dir/sliding-tile-3x3x3.json"
  "$bin" baseline --kind sliding-tile --model wan-mini --grid "$tgrid" --tile 4,4,4 --window 2,3,3 \
    --steps "$steps" --warmup 0 --out "$dir/sliding-tile-2x3x3.json"
  "$bin" baseline --kind radial --model wan-mini --grid "$tgrid" --tile 4,4,4 \
    --steps "$steps" --warmup 0 --out "$dir/radial.json"
  "$bin" baseline --kind spatial-temporal --model wan-mini --grid "$tgrid" --tile 1,8,8 \
    --steps "$steps" --warmup 0 --out "$dir/spatial-temporal.json"

  # Oracle per-input top-k: every head online, exactly a fraction d of the key blocks by exact
  # block mass, re-selected every 5 steps (selection steps count dense).
  for d in 0.2 0.4; do
    python3 - "$dir/sliding-tile-3x3x3.json" "$dir/oracle-topk$d.json" "$d" "$steps" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
d, steps = float(sys.argv[3]), int(sys.argv[4])
for layer in p["layers"]:
    layer["heads"] = [{"rule": "online", "online": {"recall": 1.0, "min_density": d, "max_density": d}}
                      for _ in layer["heads"]]
p["schedule"]["reselect_steps"] = list(range(0, steps, 5))
p["description"] = "oracle per-input top-k at density %g" % d
json.dump(p, open(sys.argv[2], "w"))
PY
  done

  # Each calibration and each pair of baselines is its own process; PARALLEL=1 runs them at once
  # (the GPU machine: wan-mini's calls are launch-bound, so runs overlap well), logs in $dir.
  # Each log ends with the job's wall time.
  timed() { local t0=$SECONDS rc=0; "$@" || rc=$?; echo "[wall $((SECONDS - t0)) s, exit $rc]"; }
  jobs_run() {  # name, command...
    local name=$1; shift
    if [[ "${PARALLEL:-0}" == 1 ]]; then timed "$@" >"$dir/$name.log" 2>&1 & else timed "$@" 2>&1 | tee "$dir/$name.log"; fi
  }
  stage "$grid: calibrate (PSNR >= $target_psnr dB; attention time $time_levels of dense), evaluate baselines and recall plans at warm-ups $warmups"
  cal_plans=("$dir/calibrated-psnr$target_psnr.json")
  jobs_run calibrate-psnr$target_psnr "$bin" calibrate "$dir/calib.h5" "${common[@]}" \
    --prompts "$calib_prompts" --seeds "$calib_seeds" --target-psnr "$target_psnr" --out "${cal_plans[0]}"
  for t in $time_levels; do
    jobs_run calibrate-time$t "$bin" calibrate "$dir/calib.h5" "${common[@]}" --prompts "$calib_prompts" \
      --seeds "$calib_seeds" --target-time "$t" --max-verify 2 --out "$dir/calibrated-time$t.json"
    cal_plans+=("$dir/calibrated-time$t.json")
  done
  part=0
  for pair in $eval_pairs; do
    part=$((part + 1))
    plans=()
    for name in ${pair//,/ }; do plans+=("$dir/$name.json"); done
    jobs_run eval-baselines-$part "$bin" evaluate "${plans[@]}" "${common[@]}" --prompts "$heldout_prompts" \
      --seeds "$heldout_seeds" --warmup "$warmups" --out "$dir/eval-baselines-$part"
  done
  wait
  grep -h "no plan meets\|^wrote\|^\[wall" "$dir"/calibrate-*.log || true

  stage "$grid: evaluate calibrated plans on held-out prompts and seeds (+ bf16 floor)"
  "$bin" evaluate "${cal_plans[@]}" "${common[@]}" --prompts "$heldout_prompts" --seeds "$heldout_seeds" \
    --floor --out "$dir/eval-calibrated"
done
stage "done: tables in $out/*/eval-*/results.{md,csv,json}"
