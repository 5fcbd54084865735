#!/usr/bin/env bash
# sparseplan evaluate and calibrate as a user runs them, on wan-mini at a tiny grid (4 frames of
# 32 x 32 pixels, 6 steps): a dense-rule plan evaluates to infinite PSNR, the tables and
# side-by-side videos are written, baselines get warm-up variants, a real capture calibrates a
# plan that meets its target, and bad input (a plan for another grid or model, an empty prompt
# file, an impossible target) gets a clear message and a non-zero exit.
# $SPARSEPLAN is the binary under test, $WAN_MINI the wan-mini fixture directory.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
model=${WAN_MINI:?set WAN_MINI to the wan-mini directory}
source "$(dirname "$0")/cli_expect.sh"

echo "bg-checker bgcolor-black pan-up green square move-down large" >"$tmp/prompts.txt"
printf '# only a comment\n\n' >"$tmp/empty.txt"
tiny=(--model "$model" --prompts "$tmp/prompts.txt" --video 4,32,32 --steps 6 --quiet)

# A dense-rule plan and a sliding-tile baseline for the 4x8x8 token grid, 16-token blocks.
"$bin" baseline --kind sliding-tile --model wan-mini --grid 4,8,8 --tile 1,4,4 --window 1,1,1 \
  --block-size 16 --steps 6 --warmup 0 --out "$tmp/tile.json" >/dev/null
python3 - "$tmp/tile.json" "$tmp/dense.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for layer in p["layers"]:
    layer["heads"] = [{"rule": "dense"} for _ in layer["heads"]]
json.dump(p, open(sys.argv[2], "w"))
PY

expect "a dense-rule plan evaluates to infinite PSNR" 0 "inf" -- \
  "$bin" evaluate "$tmp/dense.json" "${tiny[@]}" --out "$tmp/eval"
check "the dense-rule row has PSNR inf in the CSV" grep -q "^dense,1.000000,inf,inf" "$tmp/eval/results.csv"
for f in results.txt results.md results.html results.json results.csv compare-dense.gif compare-dense.png; do
  check "evaluate writes $f" test -s "$tmp/eval/$f"
done
expect "baselines get warm-up variants in one table" 0 "tile+w3" -- \
  "$bin" evaluate "$tmp/tile.json" "${tiny[@]}" --warmup 0,3 --out "$tmp/eval2"
check "the warm-up 0 row is in the CSV" grep -q "^tile+w0," "$tmp/eval2/results.csv"

# A plan for another grid or model is refused before anything runs.
"$bin" baseline --kind sliding-tile --model wan-mini --grid 4,16,16 --tile 1,4,4 --block-size 16 \
  --steps 6 --warmup 0 --out "$tmp/other-grid.json" >/dev/null
expect "a plan for another grid is refused" 1 "token grid" -- \
  "$bin" evaluate "$tmp/other-grid.json" "${tiny[@]}" --out "$tmp/bad"
python3 - "$tmp/tile.json" "$tmp/other-model.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["model"]["layers"] = 4
p["layers"] = p["layers"][:4]
json.dump(p, open(sys.argv[2], "w"))
PY
expect "a plan for another model is refused" 1 "plan has 4 layers" -- \
  "$bin" evaluate "$tmp/other-model.json" "${tiny[@]}" --out "$tmp/bad"
expect "an empty prompt file is named" 1 "$tmp/empty.txt: no prompt in the file" -- \
  "$bin" evaluate "$tmp/tile.json" --model "$model" --prompts "$tmp/empty.txt" --video 4,32,32 --out "$tmp/bad"
expect "a warm-up beyond the steps is refused" 1 "--warmup 6" -- \
  "$bin" evaluate "$tmp/tile.json" "${tiny[@]}" --warmup 6 --out "$tmp/bad"
check "failed evaluations write no output directory" test ! -e "$tmp/bad"

# Calibration on a real capture of the same grid.
"$bin" capture --model "$model" --prompts "$tmp/prompts.txt" --frames 4 --height 32 --width 32 \
  --steps 6 --seed 3 --block-size 16 --tiles 1x4x4 --out "$tmp/calib.h5" >/dev/null 2>&1
# With 16-token blocks the cost model prices every sparse block as a 64-token one, so on this grid
# no plan saving attention time keeps 28 dB: calibration says so and writes the best plan that
# saves time.
expect "calibration with no plan meeting the target says so and writes the best found" 2 "the best found is written to $tmp/cal.json" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --seeds 3 --target-psnr 28 --warmups 0,1,2 --out "$tmp/cal.json"
check "the calibrated plan validates" "$bin" validate "$tmp/cal.json"
check "the calibrated plan records its calibration" grep -q '"psnr_mean"' "$tmp/cal.json"
expect "the calibrated plan evaluates" 0 "cal" -- \
  "$bin" evaluate "$tmp/cal.json" "${tiny[@]}" --seeds 3 --out "$tmp/eval-cal"
check "evaluate on the calibration prompts gives the PSNR and time the plan records" python3 -c "
import csv, json, sys
row = {r['plan']: r for r in csv.DictReader(open('$tmp/eval-cal/results.csv'))}['cal']
cal = json.load(open('$tmp/cal.json'))['search']['calibration']
psnr = min(float(row['psnr_mean']), 200.0)
sys.exit(0 if abs(psnr - cal['psnr_mean']) < 0.01 and cal['time_fraction'] < 0.99
         and abs(float(row['time_fraction']) - cal['time_fraction']) < 1e-3 else 1)"
expect "analyze draws the frontier of evaluate's own results.json" 0 "index.html" -- \
  "$bin" analyze "$tmp/calib.h5" --evaluation "$tmp/eval-cal/results.json" --out "$tmp/report-eval" --quiet
check "the report shows the frontier figure" grep -q "figures/frontier.svg" "$tmp/report-eval/index.html"
expect "an impossible speed target says so and exits non-zero" 2 "no plan meets the target" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --target-time 0.001 --warmups 0 --max-verify 1 --out "$tmp/impossible.json"
expect "a capture of another grid is refused" 1 "token grid" -- \
  "$bin" calibrate "$tmp/calib.h5" --model "$model" --prompts "$tmp/prompts.txt" --video 4,64,64 --target-psnr 30 --out "$tmp/x.json"
expect "refresh intervals without the residual cache are refused, not ignored" 1 "needs --compensation residual_cache" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --target-psnr 30 --compensation none --refresh-every 3 --out "$tmp/x.json"
expect "a density level outside (0, 1] is refused naming the option" 1 "--density-levels" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --target-psnr 30 --density-levels 0.1,1.5 --out "$tmp/x.json"
expect "a refresh interval that is not a count is refused naming the option" 1 "--refresh-every" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --target-psnr 30 --refresh-every 3,soon --out "$tmp/x.json"
expect "both targets at once are refused" 1 "exactly one of --target-psnr" -- \
  "$bin" calibrate "$tmp/calib.h5" "${tiny[@]}" --target-psnr 30 --target-time 0.5 --out "$tmp/x.json"
expect "an empty calibration prompt file is named" 1 "no prompt in the file" -- \
  "$bin" calibrate "$tmp/calib.h5" --model "$model" --prompts "$tmp/empty.txt" --video 4,32,32 --target-psnr 30 --out "$tmp/x.json"

finish cli_fidelity_tests
