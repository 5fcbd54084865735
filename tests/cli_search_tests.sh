#!/usr/bin/env bash
# sparseplan synth-capture / search / compare / analyze as a user runs them: exit codes,
# messages, files written. $SPARSEPLAN is the binary under test.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
source "$(dirname "$0")/cli_expect.sh"


small=(--grid 8x16x32 --tile 2x4x8 --tile 2x8x8 --layers 2 --heads 6 --steps 2 --quiet)
expect "synth-capture writes a capture" 0 "wrote" -- "$bin" synth-capture --out "$tmp/train.h5" "${small[@]}" --prompts 2
"$bin" synth-capture --out "$tmp/held.h5" "${small[@]}" --prompts 2 --first-prompt 10 >/dev/null
"$bin" synth-capture --out "$tmp/other.h5" --grid 8x16x16 --tile 2x4x8 --layers 2 --heads 6 --steps 2 --quiet >/dev/null
expect "synth-capture rejects an unknown pattern" 1 "unknown planted pattern 'spiral'" -- "$bin" synth-capture --out "$tmp/x.h5" "${small[@]}" --pattern spiral

expect "search writes a plan" 0 "wrote $tmp/plan.json" -- "$bin" search "$tmp/train.h5" --recall 0.9 --out "$tmp/plan.json" --quiet
expect "the searched plan is valid" 0 "valid plan" -- "$bin" validate "$tmp/plan.json"
"$bin" search "$tmp/train.h5" --recall 0.9 --out "$tmp/plan2.json" --quiet --threads 1 >/dev/null
check "search is deterministic" cmp -s "$tmp/plan.json" "$tmp/plan2.json"
expect "search in budget mode" 0 "mean density budget 0.2" -- "$bin" search "$tmp/train.h5" --budget 0.2 --out "$tmp/budget.json" --quiet
expect "search needs exactly one mode" 1 "give exactly one of --recall R and --budget D" -- "$bin" search "$tmp/train.h5" --recall 0.9 --budget 0.2 --out "$tmp/x.json"
expect "search needs a mode" 1 "give exactly one of --recall R and --budget D" -- "$bin" search "$tmp/train.h5" --out "$tmp/x.json"
expect "search rejects a recall above 1" 1 "--recall 1.5" -- "$bin" search "$tmp/train.h5" --recall 1.5 --out "$tmp/x.json" --quiet
expect "search rejects an uncaptured tile" 1 "tile 1x2x2 was not captured" -- "$bin" search "$tmp/train.h5" --recall 0.9 --tile 1x2x2 --out "$tmp/x.json" --quiet
expect "search names a missing capture" 1 "$tmp/missing.h5" -- "$bin" search "$tmp/missing.h5" --recall 0.9 --out "$tmp/x.json"
expect "search refuses captures of different grids" 1 "does not match" -- "$bin" search "$tmp/train.h5" "$tmp/other.h5" --recall 0.9 --out "$tmp/x.json"
check "a failed search writes no plan" test ! -e "$tmp/x.json"

expect "compare scores a plan on held-out captures" 0 "% of heads keep worst recall >= 0.9" -- "$bin" compare "$tmp/plan.json" --captures "$tmp/held.h5" --quiet
expect "compare adds baselines" 0 "sliding-tile" -- "$bin" compare "$tmp/plan.json" --captures "$tmp/held.h5" --baselines --quiet
expect "compare prints Markdown" 0 "|---|" -- "$bin" compare "$tmp/plan.json" "$tmp/budget.json" --captures "$tmp/held.h5" --markdown --no-oracle --quiet
expect "compare refuses a plan for another grid" 1 "does not fit the captures: grid 8x16x32 vs 8x16x16" -- "$bin" compare "$tmp/plan.json" --captures "$tmp/other.h5" --quiet
expect "compare names a missing plan" 1 "$tmp/none.json" -- "$bin" compare "$tmp/none.json" --captures "$tmp/held.h5"

expect "analyze writes a report" 0 "index.html" -- "$bin" analyze "$tmp/train.h5" "$tmp/held.h5" --out "$tmp/report" --quiet
check "the report has its figures" test -s "$tmp/report/figures/density_map.svg" -a -s "$tmp/report/figures/recall_layer0.svg" -a -s "$tmp/report/analysis.json"
check "every report figure has a title, numbered and labelled axes, a legend or colour bar" python3 "$(dirname "$0")/check_report_figures.py" "$tmp/report" 6
cat >"$tmp/evaluate.json" <<'JSON'
[{"plan": "dense", "density": 1.0, "psnr_mean": null, "psnr_worst": null},
 {"plan": "recall <0.9> & warm-up", "density": 0.89, "psnr_mean": 31.2, "psnr_worst": 29.0, "ssim": 0.93},
 {"plan": "recall 0.9", "density": 0.86, "psnr_mean": 20.6, "psnr_worst": 18.2}]
JSON
expect "analyze draws the fidelity frontier of an evaluation" 0 "index.html" -- "$bin" analyze "$tmp/train.h5" --out "$tmp/report-eval" --evaluation "$tmp/evaluate.json" --quiet
check "the frontier figure is drawn and shown" python3 "$(dirname "$0")/check_report_figures.py" "$tmp/report-eval" 6 --frontier
check "the evaluation table escapes plan names" grep -qF "recall &lt;0.9&gt; &amp; warm-up" "$tmp/report-eval/index.html"
echo '[{"plan": "a", "psnr_mean": 20}]' >"$tmp/bad-eval.json"
expect "analyze names a bad evaluation field" 1 "$tmp/bad-eval.json: [0].density: missing" -- "$bin" analyze "$tmp/train.h5" --out "$tmp/r3" --evaluation "$tmp/bad-eval.json" --quiet
expect "analyze rejects an uncaptured tile" 1 "--tile 4x4x4 was not captured" -- "$bin" analyze "$tmp/train.h5" --tile 4x4x4 --out "$tmp/r2" --quiet

finish "cli search tests"
