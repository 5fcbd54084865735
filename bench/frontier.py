#!/usr/bin/env python3
"""Issue 10's comparison from `sparseplan evaluate` tables (results.md) of one grid.

For each attention-time level, the calibrated plan for that level against the best baseline row
(any warm-up) and the best `search --recall` row whose predicted time fits the level; the
cheapest rows at or above a PSNR target. With --json, writes every row as one evaluation file for
`sparseplan analyze --evaluation` (its PSNR/density frontier figure).

  python3 bench/frontier.py bench/results/h200_baselines_warmup0-9_16x64x64.md \
      bench/results/h200_oracle_topk_16x64x64.md bench/results/h200_calibrated_16x64x64.md \
      --json frontier-16x64x64.json
"""
import argparse
import json
import math
import os
import sys


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 10 or cells[0] in ("plan", "dense") or cells[0].startswith("---"):
                continue
            psnr = lambda s: math.inf if s == "inf" else float(s)
            rows.append({
                "plan": cells[0], "density": float(cells[2]), "psnr_mean": psnr(cells[3]),
                "psnr_worst": psnr(cells[4]), "ssim": float(cells[5]), "rel_l2": float(cells[7]),
                "predicted_ms": float(cells[8]), "time_fraction": float(cells[9]),
                "measured_ms": float(cells[10]), "source": path})
    if not rows:
        sys.exit(f"{path}: no evaluate table rows")
    return rows


def kind(name):
    if name.startswith("calibrated"):
        return "calibrated"
    if name.startswith("floor"):
        return "floor"
    if name.startswith("recall"):
        return "recall"
    return "baseline"


def fmt(r):
    return (f"{r['plan']}: {r['psnr_mean']:.2f} / {r['psnr_worst']:.2f} dB, density "
            f"{r['density']:.3f}, time {r['time_fraction']:.3f}") if r else "none fits"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--levels", default="0.3,0.5,0.7")
    ap.add_argument("--target-psnr", type=float, default=30.0)
    ap.add_argument("--json", help="write all rows as one evaluation file")
    a = ap.parse_args()
    rows = [r for t in a.tables for r in read_rows(t)]
    best = lambda rs: max(rs, key=lambda r: r["psnr_mean"], default=None)
    print("| time level | calibrated for it | best baseline within it | best `search --recall` within it |")
    print("|---|---|---|---|")
    for level in (float(x) for x in a.levels.split(",")):
        fits = [r for r in rows if r["time_fraction"] <= level + 5e-4]
        cal = [r for r in rows if r["plan"] == f"calibrated-time{level:g}"]
        print(f"| {level:g} | {fmt(cal[0] if cal else None)} | "
              f"{fmt(best([r for r in fits if kind(r['plan']) == 'baseline']))} | "
              f"{fmt(best([r for r in fits if kind(r['plan']) == 'recall']))} |")
    print()
    for k in ("calibrated", "baseline", "recall"):
        ok = [r for r in rows if kind(r["plan"]) == k and r["psnr_mean"] >= a.target_psnr]
        cheapest = min(ok, key=lambda r: r["density"], default=None)
        print(f"- cheapest {k} row at >= {a.target_psnr:g} dB: {fmt(cheapest)}")
    if a.json:
        out = [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()
                if k != "source"} for r in rows]
        with open(a.json + ".tmp", "w") as f:
            json.dump({"rows": out}, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
