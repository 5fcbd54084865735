#!/usr/bin/env python3
"""Work order of the block-sparse kernels (GPU machine, torch 2.11): the same masks as
bench_pair64.py (3D windows in tile order on 32^3 and Wan 480p, random on 32^3), H=12, bf16,
at each SPARSEPLAN_WORK_BUCKETS value (0 sort by exact row weight, k weight classes of equal
width, head-major within a class), alternating in one process, best of two rounds. One JSON
line per mask: TFLOP/s and time / (density x dense time) per bucket count.

  PYTHONPATH=python python3 bench/work_order.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import bench, mask_to_csr, random_mask  # noqa: E402
from bench_pair64 import GRIDS, tile_inputs, window_mask  # noqa: E402
import sparseplan  # noqa: E402  (bench_attention put python/ on the path)

BUCKETS = ["0", "1", "2", "4", "8"]
ops = sparseplan.load()
H = 12
for D in (128, 64):
    for gname in ("cube32", "wan480p"):
        grid = GRIDS[gname]
        for block in (128, 64):
            tile, N, g, q, k, v, kvv = tile_inputs(grid, block, H, D)
            dense = bench(lambda: ops.dense_attention(q, k, v), warmup_ms=20, rep_ms=100)
            masks = [("w" + ",".join(map(str, r)), window_mask(grid, tile, r, H)[0])
                     for r in [(4, 4, 8), (4, 8, 8), (8, 8, 8), (8, 12, 16)]]
            if gname == "cube32":
                nb = N // block
                masks.append(("random 1/8", random_mask(H, nb, nb, [1 / 8], g)))
            for name, mask in masks:
                ro, ci = mask_to_csr(mask)
                d = mask.float().mean().item()
                work = 4.0 * D * mask.sum().item() * block * block
                call = lambda: ops.block_sparse_attention(q, k, v, ro, ci, block, block, kvv)
                res = {}
                for rep in range(2):
                    for sh in BUCKETS:
                        os.environ["SPARSEPLAN_WORK_BUCKETS"] = sh
                        ms = bench(call, warmup_ms=20, rep_ms=100)
                        res.setdefault(sh, []).append(ms)
                out = {sh: dict(tflops=round(work / min(v) / 1e9, 1), over_dense=round(min(v) / (d * dense), 3)) for sh, v in res.items()}
                print(json.dumps(dict(D=D, grid=gname, block=block, mask=name, density=round(d, 4), buckets=out)), flush=True)
