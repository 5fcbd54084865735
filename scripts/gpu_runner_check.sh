#!/usr/bin/env bash
# On the GPU machine: builds (scripts/gpu_build.sh), then checks that the model runner, the
# capture and the plan runtime give on CUDA what they give on the CPU, and times them.
# Logs and the small outputs go to $OUT (or out/gpu-check). Needs .deps and .fixtures carried.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/out/gpu-check}"
mkdir -p "$out"
cd "$root"
export SPARSEPLAN_MODEL="$root/.fixtures/wan-mini"
JOBS=16 scripts/gpu_build.sh sparseplan_cli sparseplan_tests sparseplan_ops >"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
bin=build-gpu/cli/sparseplan
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader | tee "$out/gpu.txt"
echo "== GPU tests of the runner, capture and plan runtime"
build-gpu/tests/sparseplan_tests "[gpu],*CUDA*" -s 2>&1 | grep -E "relative L2|passed|failed|FAILED|skipped" | tee "$out/runner_gpu_tests.log"
echo "== torch ops from Python (torch $(python3 -c 'import torch; print(torch.__version__)'))"
SPARSEPLAN_OPS_LIB=build-gpu/runtime/ops/libsparseplan_ops.so PYTHONPATH=build-gpu/python python3 tests/test_python_ops.py 2>&1 | tail -3
prompt="bg-checker bgcolor-black pan-up green square move-down large"
echo "== generate (16x64x64, 30 steps, guidance 5): cuda float32, cuda bf16, cpu"
for dev in "cuda float32" "cuda bfloat16" "cpu float32"; do
  set -- $dev
  /usr/bin/time -f "$1 $2 wall %e s" $bin generate --prompt "$prompt" --seed 1 --device $1 --dtype $2 \
    --out "$out/gen-$1-$2" 2>&1 | grep -E "wrote|wall|error"
done
echo "== plan: wan-mini sliding tile (tile 4x4x4, window 3x3x3), cuda"
$bin baseline --model wan-mini --grid 64px-16f --steps 30 --warmup 6 --out "$out/sta.json" >/dev/null
/usr/bin/time -f "cuda plan wall %e s" $bin generate --prompt "$prompt" --seed 1 --device cuda \
  --plan "$out/sta.json" --out "$out/gen-cuda-plan" 2>&1 | grep -E "wrote|wall|error|plan|dense"
echo "== profiles (--profile: CUDA synchronised per call): dense kernel, float32 reference, plan"
for run in "kernels" "reference" "plan"; do
  extra=(--attention kernels)
  [[ $run == reference ]] && extra=(--attention reference)
  [[ $run == plan ]] && extra=(--plan "$out/sta.json")
  $bin generate --prompt "$prompt" --seed 1 --device cuda "${extra[@]}" --profile \
    --out "$out/profile-$run" 2>&1 | grep -E "^profile|^  [a-z]|error"
done
echo "== capture (2 prompts, 10 steps, 5 captured steps): cuda vs cpu"
for dev in cuda cpu; do
  /usr/bin/time -f "capture $dev wall %e s" $bin capture --model "$SPARSEPLAN_MODEL" --prompt "$prompt" \
    --prompt "bg-solid bgcolor-red pan-down black circle move-right large" --steps 10 --device $dev \
    --out "$out/capture-$dev.h5" 2>&1 | grep -E "wrote|wall|error"
done
python3 - "$out" <<'PY'
import sys, h5py, numpy as np, torch
from safetensors.torch import load_file
out = sys.argv[1]
def video(name):
    return load_file(f"{out}/{name}/video.safetensors")["video"].double()
cpu = video("gen-cpu-float32")
for other in ["gen-cuda-float32", "gen-cuda-bfloat16", "gen-cuda-plan"]:
    v = video(other)
    print(f"{other} vs gen-cpu-float32: relative L2 {float((v - cpu).norm() / cpu.norm()):.3e}")
a, b = h5py.File(f"{out}/capture-cuda.h5"), h5py.File(f"{out}/capture-cpu.h5")
for tile in a["tiles"]:
    ma, mb = a["tiles"][tile]["block_mass"][...], b["tiles"][tile]["block_mass"][...]
    print(f"capture {tile}: block mass max |cuda - cpu| {np.abs(ma - mb).max():.3e}, rows sum to 1 within {np.abs(ma.sum(-1)[ma.sum(-1) > 0] - 1).max():.1e}")
PY
