#!/usr/bin/env python3
"""The fused tile order against gather + kernel + scatter on one 3D window mask (GPU machine).

Wan2.1 480p's token grid (21 x 30 x 52, partial tiles on every axis), H=12, D=128, tiles of one
block (4x4x4 for 64, 4x4x8 for 128), each query tile attending the key tiles within `radius`
tiles on every axis. Times, alternating, the kernel on tile-order tensors (`kernel`), the
gather + kernel + scatter (`whole`), sparseplan::video_block_sparse_attention (`fused`) and the
same op on tensors in the tile-major order (`tile_major`), and checks fused and tile_major
against whole. --once runs each path once, for a profiler; --grid and --heads change the shape
(wan-mini at 32 x 128 x 128: --grid 32,32,32 --heads 3).

  PYTHONPATH=build-gpu/python:python python3 bench/fused_order.py [--block 128] [--radius 1]
      [--grid 21,30,52] [--heads 12]
"""
import argparse
import itertools
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparseplan  # noqa: E402
from bench_attention import bench, rel_l2  # noqa: E402

GRID, H, D = (21, 30, 52), 12, 128
TILES = {64: (4, 4, 4), 128: (4, 4, 8)}


def tile_order(grid, tile, block):
    """token_of_slot (-1: padding) and each tile's coordinates, tiles in (f, h, w) order."""
    along = [(g + t - 1) // t for g, t in zip(grid, tile)]
    token_of_slot = np.full(np.prod(along) * block, -1, dtype=np.int32)
    coords = list(itertools.product(*(range(a) for a in along)))
    for i, (tf, th, tw) in enumerate(coords):
        f, h, w = (np.arange(c * t, min((c + 1) * t, g)) for c, t, g in
                   zip((tf, th, tw), tile, grid))
        tokens = ((f[:, None, None] * grid[1] + h[None, :, None]) * grid[2] + w[None, None, :])
        token_of_slot[i * block:i * block + tokens.size] = tokens.reshape(-1)
    return token_of_slot, np.array(coords)


def window_csr(coords, radius, heads):
    near = (np.abs(coords[:, None, :] - coords[None, :, :]) <= radius).all(-1)
    rows = [np.nonzero(r)[0] for r in near]
    counts = np.array([len(r) for r in rows] * heads)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    nb = len(rows)
    ro = np.stack([offsets[h * nb:(h + 1) * nb + 1] for h in range(heads)])
    return ro.astype(np.int32), np.concatenate(rows * heads).astype(np.int32), near.mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--radius", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--grid", default=",".join(map(str, GRID)))
    ap.add_argument("--heads", type=int, default=H)
    args = ap.parse_args()
    grid, heads = tuple(int(x) for x in args.grid.split(",")), args.heads
    ops = sparseplan.load()
    B, tile = args.block, TILES[args.block]
    tos, coords = tile_order(grid, tile, B)
    N = int(np.prod(grid))
    sot = np.empty(N, dtype=np.int32)
    sot[tos[tos >= 0]] = np.nonzero(tos >= 0)[0]
    valid = (tos.reshape(-1, B) >= 0).sum(1).astype(np.int32)
    ro, ci, density = window_csr(coords, args.radius, heads)
    dev = "cuda"
    t = lambda a: torch.from_numpy(a).to(dev)
    ro, ci, tos_t, sot_t, valid_t = t(ro).unsqueeze(0), t(ci), t(tos), t(sot), t(valid)
    gen = torch.Generator(device=dev).manual_seed(1)
    q, k, v = (torch.randn(1, N, heads, D, device=dev, dtype=torch.bfloat16, generator=gen)
               for _ in range(3))
    qt, kt, vt = (ops.reorder_tokens(x, tos_t) for x in (q, k, v))
    rows = t(tos[tos >= 0].astype(np.int64))
    qm, km, vm = (x[:, rows].contiguous() for x in (q, k, v))

    def kernel():
        return ops.block_sparse_attention(qt, kt, vt, ro, ci, B, B, valid_t)

    def whole():
        a, b, c = (ops.reorder_tokens(x, tos_t) for x in (q, k, v))
        o, _ = ops.block_sparse_attention(a, b, c, ro, ci, B, B, valid_t)
        return ops.reorder_tokens(o, sot_t)

    def fused():
        return ops.video_block_sparse_attention(q, k, v, ro, ci, list(grid), list(tile), B)[0]

    def tile_major():
        return ops.video_block_sparse_attention(qm, km, vm, ro, ci, list(grid), list(tile), B,
                                                tile_major=True)[0]

    fns = dict(kernel=kernel, whole=whole, fused=fused, tile_major=tile_major)
    if args.once:
        for fn in fns.values():
            fn()
        torch.cuda.synchronize()
        return
    err = rel_l2(fused(), whole())
    tile_major_err = rel_l2(tile_major(), whole()[:, rows])
    times = {key: [] for key in fns}
    for _ in range(args.reps):
        for key, fn in fns.items():
            times[key].append(bench(fn))
    med = {key: float(np.median(x)) for key, x in times.items()}
    print(json.dumps(dict(grid=grid, heads=heads, tile=tile, block=B, radius=args.radius,
                          density=density, ms=med, fused_over_kernel=med["fused"] / med["kernel"],
                          fused_over_whole=med["fused"] / med["whole"],
                          tile_major_over_kernel=med["tile_major"] / med["kernel"],
                          fused_vs_whole_rel_l2=err, tile_major_vs_whole_rel_l2=tile_major_err)),
          flush=True)


if __name__ == "__main__":
    main()
