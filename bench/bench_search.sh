#!/usr/bin/env bash
# Search speed: a synthetic capture the size of Wan2.1-1.3B (30 layers x 12 heads, 512 x 512
# blocks of 64 tokens, 2 prompts x 4 steps) and, for scaling, 4-layer captures of growing grids.
# Usage: bench/bench_search.sh SPARSEPLAN_BINARY WORK_DIR   (needs ~3.5 GB free in WORK_DIR)
set -eu
bin=${1:?sparseplan binary}
work=${2:?work directory}
mkdir -p "$work"
# Wall seconds and CPU seconds (user + system): on a shared box the CPU time is the steadier.
seconds() { /usr/bin/time -f "%e s wall, %U+%S s cpu" "$@" 2>&1 >/dev/null | tail -1; }

wan=$work/wan13b.h5
[ -e "$wan" ] || "$bin" synth-capture --out "$wan" --grid 16x32x64 --tile 4x4x4 --layers 30 \
  --heads 12 --prompts 2 --steps 4 --quiet
for threads in 1 2; do
  echo "wan2.1-1.3b size (512 blocks, 360 heads, 8 samples), $threads thread(s): $(seconds "$bin" search "$wan" --recall 0.9 --threads "$threads" --quiet --out "$work/wan_plan_t$threads.json")"
done
for grid in 8x16x32 16x16x32 16x32x32 16x32x64 32x32x64; do
  cap=$work/scale_$grid.h5
  [ -e "$cap" ] || "$bin" synth-capture --out "$cap" --grid "$grid" --tile 4x4x4 --layers 4 \
    --heads 12 --prompts 2 --steps 4 --quiet
  blocks=$(( $(echo "$grid" | tr x '*') / 64 ))
  echo "grid $grid ($blocks blocks), 48 heads, 2 threads: $(seconds "$bin" search "$cap" --recall 0.9 --threads 2 --quiet --out "$work/scale_$grid.json")"
done
