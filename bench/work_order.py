#!/usr/bin/env python3
"""Work order of the block-sparse kernels (GPU machine, torch 2.11): the same masks as
bench_pair64.py (3D windows in tile order on 32^3 and Wan 480p, random on 32^3), H=12, bf16,
64-token blocks in the runner's pair order, under each configuration of how the persistent
CTAs take work items: `draw` (from the work counter, the default) or `deal` (the static
round-robin, SPARSEPLAN_WORK_DRAW=0), over the work list sorted in k weight classes
(SPARSEPLAN_WORK_BUCKETS: 0 exact row weight, k classes of equal width, head-major within a
class), and with a third field pM the 64-token blocks' SPARSEPLAN_PAIR64 mode M (draw:1:p5).
Configurations alternate in one process; best of --reps rounds. One JSON line per mask:
TFLOP/s and time / (density x dense time) per configuration.

With --plans SHAPES, the masks are instead one layer of each plan of bench/plan_masks.py (sliding
tile, radial, spatial-temporal, searched; written with the CLI --bin) at each block size, timed on
the tile-order tensors with their padded keys and, at 64-token blocks, their pair order.

  PYTHONPATH=build-gpu/python:python python3 bench/work_order.py [--configs deal:8,draw:8,draw:1]
      [--dims 128,64] [--reps 2] [--out DIR] [--plans wan480p [--bin build-gpu/cli/sparseplan]]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparseplan  # noqa: E402  (the built package on PYTHONPATH has _core)
from bench_attention import bench, mask_to_csr, random_mask  # noqa: E402
from bench_pair64 import GRIDS, TILES, tile_inputs, window_mask  # noqa: E402
from jsonl_log import log_line  # noqa: E402

WINDOWS = [(4, 4, 8), (4, 8, 8), (8, 8, 8), (8, 12, 16)]


def configure(config):
    how, buckets, *pairing = config.split(":")
    if how not in ("draw", "deal") or len(pairing) > 1 or (pairing and pairing[0][:1] != "p"):
        raise SystemExit(f"work_order.py: config {config!r}: expected draw:K or deal:K, "
                         "optionally :pM")
    os.environ["SPARSEPLAN_WORK_DRAW"] = "1" if how == "draw" else "0"
    os.environ["SPARSEPLAN_WORK_BUCKETS"] = buckets
    if pairing:
        os.environ["SPARSEPLAN_PAIR64"] = pairing[0][1:]
    else:
        os.environ.pop("SPARSEPLAN_PAIR64", None)


def timed(call, configs, reps):
    res = {}
    for _ in range(reps):
        for config in configs:
            configure(config)
            res.setdefault(config, []).append(bench(call, warmup_ms=20, rep_ms=100))
    return res


def write(out, rec):
    log_line(out, "work_order.jsonl", rec)


def plan_masks(args, ops, configs):
    import numpy as np
    import plan_masks as pm
    work_dir = os.path.join(args.out or ".", "plan-masks")
    os.makedirs(work_dir, exist_ok=True)
    i32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32)).cuda()
    for shape in args.plans.split(","):
        _, _, H, D = pm.SHAPES[shape]
        for block in (128, 64):
            for name, plan in pm.make_plans(args.bin, shape, block, work_dir).items():
                m = pm.load_mask(pm.export(args.bin, plan, work_dir), H)
                slots = m["nb"] * block
                gen = torch.Generator(device="cuda").manual_seed(1)
                q, k, v = (torch.randn(1, slots, H, D, device="cuda", dtype=torch.bfloat16,
                                       generator=gen) for _ in range(3))
                ro = i32(m["row_offsets"]).unsqueeze(0).contiguous()
                ci = i32(m["col_indices"])
                valid = i32(m["block_valid"])
                kvv = valid if bool((valid < block).any()) else None
                order = i32(m["q_pair_order"]).unsqueeze(0).contiguous() if block == 64 else None
                nnz = int(m["row_offsets"][-1, -1])
                work = 4.0 * D * nnz * block * block
                call = lambda: ops.block_sparse_attention(q, k, v, ro, ci, block, block, kvv,
                                                          None, order)
                res = timed(call, configs, args.reps)
                write(args.out, dict(shape=shape, block=block, plan=name,
                                     density=round(nnz / (H * float(m["nb"]) ** 2), 4),
                                     configs={c: dict(ms=round(min(t), 4),
                                                      tflops=round(work / min(t) / 1e9, 1))
                                              for c, t in res.items()}))
                del q, k, v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="deal:8,draw:8,draw:1")
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--grids", default="cube32,wan480p")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--plans", default="", help="plan masks of these shapes (plan_masks.py)")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "build-gpu", "cli", "sparseplan"))
    args = ap.parse_args()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    configs = args.configs.split(",")
    for config in configs:
        configure(config)
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    ops = sparseplan.load()
    if args.plans:
        return plan_masks(args, ops, configs)
    H = 12
    for D in (int(d) for d in args.dims.split(",")):
        for gname in args.grids.split(","):
            grid = GRIDS[gname]
            for block in (128, 64):
                tile, N, g, q, k, v, kvv = tile_inputs(grid, block, H, D)
                dense = bench(lambda: ops.dense_attention(q, k, v), warmup_ms=20, rep_ms=100)
                masks = [("w" + ",".join(map(str, r)), window_mask(grid, tile, r, H)[0])
                         for r in WINDOWS]
                if gname == "cube32":
                    nb = N // block
                    masks.append(("random 1/8", random_mask(H, nb, nb, [1 / 8], g)))
                for name, mask in masks:
                    ro, ci = mask_to_csr(mask)
                    order = None
                    if block == 64 and not name.startswith("random"):
                        order = sparseplan.query_pair_order(ro[0].cpu(), ci.cpu(), grid,
                                                            TILES[64], 64)
                        order = order.unsqueeze(0).contiguous().cuda()
                    d = mask.float().mean().item()
                    work = 4.0 * D * mask.sum().item() * block * block
                    call = lambda: ops.block_sparse_attention(q, k, v, ro, ci, block, block, kvv,
                                                              None, order)
                    res = timed(call, configs, args.reps)
                    out = {c: dict(tflops=round(work / min(t) / 1e9, 1),
                                   over_dense=round(min(t) / (d * dense), 3))
                           for c, t in res.items()}
                    write(args.out, dict(D=D, grid=gname, block=block, mask=name,
                                         density=round(d, 4), dense_ms=round(dense, 4),
                                         configs=out))
                del q, k, v
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
