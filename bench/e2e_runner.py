#!/usr/bin/env python3
"""End to end on the GPU machine: wan-mini at 32 x 128 x 128 (token grid 32x32x32, 32,768
tokens), 30 steps, guidance 5, dense and plans at several densities through the same runner
(`sparseplan generate --device cuda`). Each configuration runs twice: without --profile for the
sampling time, with --profile (CUDA synchronised per call) for the attention time. Plans run
with the token stream in their tile-major order (the default) and, as `(model order)` rows with
--model-order, in model order with a reorder per sparse call. The check of issue 11: a plan at
overall density d samples within 1.2 x (d x dense attention time + dense non-attention time).

  python3 bench/e2e_runner.py [--bin build-gpu/cli/sparseplan] [--out DIR] [--steps 30]

Writes DIR/e2e_runner.jsonl and prints a table (markdown, for bench/RESULTS.md).
"""
import argparse
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "bg-checker bgcolor-black pan-up green square move-down large"
# name: sparseplan baseline arguments (wan-mini, token grid 32x32x32, 4x4x4 tiles = 8x8x8 tiles)
PLANS = {
    "sliding 3x3x3": ["--kind", "sliding-tile", "--window", "3,3,3"],
    "sliding 5x5x5": ["--kind", "sliding-tile", "--window", "5,5,5"],
    "sliding 7x7x7": ["--kind", "sliding-tile", "--window", "7,7,7"],
    "radial": ["--kind", "radial"],
    "spatial-temporal": ["--kind", "spatial-temporal"],
}


def generate(bin_, out, args, extra, profile):
    cmd = [bin_, "generate", "--prompt", PROMPT, "--device", "cuda", "--frames", str(args.frames),
           "--height", str(args.size), "--width", str(args.size), "--steps", str(args.steps),
           "--seed", "1", "--out", out] + extra + (["--profile"] if profile else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "", flush=True)
    with open(os.path.join(out, "generate.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-gpu", "cli", "sparseplan"))
    ap.add_argument("--out", default=os.environ.get("OUT", "out/e2e"))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="dense warm-up steps of the plans")
    ap.add_argument("--model-order", action="store_true",
                    help="also run each plan with the token stream in model order")
    ap.add_argument("--consecutive-pairs", action="store_true",
                    help="also run each plan with consecutive 64-token query blocks paired")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    grid = f"{args.frames},{args.size // 4},{args.size // 4}"
    configs = {"dense": []}
    for name, kind in PLANS.items():
        path = os.path.join(args.out, name.replace(" ", "-") + ".json")
        subprocess.run([args.bin, "baseline", "--model", "wan-mini", "--grid", grid,
                        "--steps", str(args.steps), "--warmup", str(args.warmup), "--out", path] + kind,
                       check=True, capture_output=True)
        configs[name] = ["--plan", path]
        if args.model_order:
            configs[name + " (model order)"] = ["--plan", path, "--token-order", "model"]
        if args.consecutive_pairs:
            configs[name + " (consecutive pairs)"] = ["--plan", path, "--query-pairs",
                                                      "consecutive"]
    # One untimed run first: CUDA context, cuBLAS handles and the kernels' first launches.
    generate(args.bin, os.path.join(args.out, "warm"), args, [], False)
    rows = {}
    for name, extra in configs.items():
        d = os.path.join(args.out, name.replace(" ", "-"))
        plain = generate(args.bin, d + "-plain", args, extra, False)
        prof = generate(args.bin, d + "-profile", args, extra, True)
        p = prof["profile"]
        rows[name] = dict(
            config=name, sampling_s=plain["sampling_seconds"],
            profiled_sampling_s=prof["sampling_seconds"], attention_s=p["attention_seconds"],
            dense_s=p["dense"]["seconds"], sparse_s=p["sparse"]["seconds"],
            reorder_s=p["reorder"]["seconds"],
            density=prof.get("plan_stats", {}).get("overall_density", 1.0))
    dense = rows["dense"]
    non_attention = dense["profiled_sampling_s"] - dense["attention_s"]
    print(f"\n| config | overall density d | sampling (s) | attention, profiled (s) | reorder (s) "
          f"| 1.2 x (d x dense attn + non-attn) (s) | within |")
    print("|---|---|---|---|---|---|---|")
    with open(os.path.join(args.out, "e2e_runner.jsonl"), "a") as f:
        for name, r in rows.items():
            bound = 1.2 * (r["density"] * dense["attention_s"] + non_attention)
            r.update(bound_s=bound, within=r["sampling_s"] <= bound,
                     date=time.strftime("%Y-%m-%d"), steps=args.steps, grid=grid)
            f.write(json.dumps(r) + "\n")
            print(f"| {name} | {r['density']:.3f} | {r['sampling_s']:.2f} | {r['attention_s']:.2f} "
                  f"| {r['reorder_s']:.3f} | {bound:.2f} | {'yes' if r['within'] else 'NO'} |")
    print(f"\ndense: non-attention {non_attention:.2f} s, attention {dense['attention_s']:.2f} s "
          f"(profiled); plain sampling {dense['sampling_s']:.2f} s")


if __name__ == "__main__":
    main()
