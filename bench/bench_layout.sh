#!/usr/bin/env bash
# Plan -> block layout compile time for Wan2.1-1.3B at 480p, 81 frames (30 layers x 12 heads,
# 32760 tokens): the shipped baseline plans, and variants where every head's rule differs (a
# distinct global block per head) so no layout can be reused between heads.
#   bench/bench_layout.sh [path/to/sparseplan]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build/cli/sparseplan}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for kind in sliding-tile radial spatial-temporal; do
  plan="$root/configs/plans/wan2.1-1.3b-480p-$kind.json"
  python3 - "$plan" "$tmp/unique-$kind.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
n = 0
for layer in plan["layers"]:
    for head in layer["heads"]:
        head["window"]["global_blocks"] = [n]
        n += 1
json.dump(plan, open(sys.argv[2], "w"))
PY
  for p in "$plan" "$tmp/unique-$kind.json"; do
    best=""
    for i in 1 2 3 4 5; do
      t=$("$bin" layout "$p" | sed -n 's/.*compiled in \([0-9.]*\) s/\1/p')
      best=$(python3 -c "print(min(float(x) for x in '$best $t'.split()))")
    done
    density=$("$bin" layout "$p" | sed -n 's/mean density \([0-9.]*\).*/\1/p')
    echo "$(basename "$p" .json): mean density $density, compile best of 5: $best s"
  done
done
