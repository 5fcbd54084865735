#!/usr/bin/env python3
"""64-token against 128-token blocks (GPU machine, torch 2.11): block-sparse attention on 3D
window masks in tile order (tile 4x4x4 = one 64-token block, 4x4x8 = one 128-token block) and
on random masks, with 64-token query blocks in SPARSEPLAN_PAIR64 modes (--variants), timed in
one process: unpaired (0, one 64-row tile per block), pair_blocks (1, two blocks per 128-row
tile over the union of their key blocks, one key block per stage), pair_two (2, two key blocks
of the union per 128-key stage), pair_order (2 in the pair order the runner uses,
sparseplan.query_pair_order: which blocks share a tile), rounds_shared (3, the rounds kernel
with shared rounds only, pair order), rounds (4, each warpgroup two blocks of its own row per
round where they fit its ring, pair order) and rounds_consecutive (4, consecutive pairs).
B=1, bf16, forward.

  PYTHONPATH=build-gpu/python:python python3 bench/bench_pair64.py [--heads 12] [--dims 128,64]
      [--grids cube32,wan480p] [--variants pair_order,rounds] [--out DIR]
  PYTHONPATH=build/python:python python3 bench/bench_pair64.py --fill-only   (no GPU)

TFLOP/s = 4 * H * D * (attended block pairs) * block_q * block_k / time (padded tokens of partial
tiles count as work, as the kernel does it); over_dense = time / (density * our dense time at the
same padded length). One JSON line per measurement (DIR/bench_pair64.jsonl) and a table.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Before bench_attention puts python/ first: the built package (PYTHONPATH) has _core.
import sparseplan  # noqa: E402
from bench_attention import bench, mask_to_csr, random_mask, rel_l2  # noqa: E402
from jsonl_log import log_line  # noqa: E402

GRIDS = {"cube32": (32, 32, 32), "wan480p": (21, 30, 52)}
TILES = {64: (4, 4, 4), 128: (4, 4, 8)}
# Window half-widths in tokens (frames, height, width): a key tile is attended when its centre
# is within this distance of the query tile's centre in every dimension.
WINDOWS = [(4, 4, 4), (4, 4, 8), (4, 8, 8), (8, 8, 8), (8, 12, 16)]
RANDOM_DENSITIES = [1 / 4, 1 / 8, 1 / 16]
# 64-token variants: SPARSEPLAN_PAIR64 mode, and whether the runner's pair order is passed.
VARIANTS = {"unpaired": ("0", False), "pair_blocks": ("1", False), "pair_two": ("2", False),
            "pair_order": ("2", True), "rounds_shared": ("3", True), "rounds": ("4", True),
            "rounds_consecutive": ("4", False), "split": ("5", True)}


def tile_centres(grid, tile):
    """Centre (of its valid part) and valid token count of each tile, in tile order."""
    counts = [math.ceil(g / t) for g, t in zip(grid, tile)]
    idx = torch.stack(torch.meshgrid(*[torch.arange(n) for n in counts], indexing="ij"), -1)
    idx = idx.reshape(-1, 3)
    lo = idx * torch.tensor(tile)
    hi = torch.minimum(lo + torch.tensor(tile), torch.tensor(grid))
    return (lo + hi - 1).float() / 2, (hi - lo).prod(-1).to(torch.int32)


def window_mask(grid, tile, radius, H, device="cuda"):
    centres, valid = tile_centres(grid, tile)
    dist = (centres[:, None, :] - centres[None, :, :]).abs()
    mask = (dist <= torch.tensor(radius, dtype=torch.float32)).all(-1)
    return mask.to(device).unsqueeze(0).expand(H, -1, -1).contiguous(), valid


def fill(mask, order):
    """Kept (query, key) block pairs over the 4 a stage holds, for one head's [nqb, nkb] mask
    whose query blocks pair as order[2i], order[2i + 1]: each pair walks ceil(|union| / 2)."""
    stages = 0
    for i in range(0, len(order), 2):
        union = mask[order[i]] | (mask[order[i + 1]] if i + 1 < len(order) else False)
        stages += (int(union.sum()) + 1) // 2
    return float(mask.sum()) / (4 * stages)


def print_fills():
    """The fill of every window mask with consecutive pairs and with the pair order (CPU)."""
    for gname, grid in GRIDS.items():
        for radius in WINDOWS:
            mask, _ = window_mask(grid, TILES[64], radius, 1, "cpu")
            ro, ci = mask_to_csr(mask)
            order = sparseplan.query_pair_order(ro[0], ci, grid, TILES[64], 64)[0].tolist()
            print(json.dumps(dict(grid=gname, window=list(radius),
                                  fill_consecutive=fill(mask[0], list(range(mask.shape[1]))),
                                  fill_pair_order=fill(mask[0], order))), flush=True)


def tile_inputs(grid, block, H, D):
    """Random bf16 q, k, v [1, N, H, D] over the grid's tiles in tile order (N counts the padded
    tokens of partial tiles), with the valid keys per block where some tile is partial."""
    tile = TILES[block]
    _, valid = tile_centres(grid, tile)
    N = len(valid) * block
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(1, N, H, D, device="cuda", dtype=torch.bfloat16, generator=gen)
               for _ in range(3))
    kv_valid = valid.cuda() if bool((valid < block).any()) else None
    return tile, N, gen, q, k, v, kv_valid


def log(out, rec):
    log_line(out, "bench_pair64.jsonl", rec)


def with_pairing(mode, fn):
    os.environ["SPARSEPLAN_PAIR64"] = mode
    try:
        return fn()
    finally:
        os.environ.pop("SPARSEPLAN_PAIR64", None)


def run_mask(ops, rec, q, k, v, mask, block, kv_valid, dense_ms, out, rows, grid, names):
    H, nqb, nkb = mask.shape
    D = q.shape[-1]
    density = mask.float().mean().item()
    work = 4.0 * D * mask.sum().item() * block * block  # mask.sum() already counts every head
    ro, ci = mask_to_csr(mask)
    order = None
    if block == 64:  # the runner's pair order (plan/query_pairs.h) for these layouts
        order = sparseplan.query_pair_order(ro[0].cpu(), ci.cpu(), grid, TILES[64], 64)
        order = order.unsqueeze(0).contiguous().cuda()
    call = lambda: ops.block_sparse_attention(q, k, v, ro, ci, block, block, kv_valid)
    ordered = lambda: ops.block_sparse_attention(q, k, v, ro, ci, block, block, kv_valid, None,
                                                 order)
    variants = ([("b128", "2", call)] if block == 128 else
                [("b64_" + n, VARIANTS[n][0], ordered if VARIANTS[n][1] else call)
                 for n in names])
    ref = None
    for label, pair, fn in variants:
        ms = with_pairing(pair, lambda: bench(fn, warmup_ms=25, rep_ms=150))
        o, _ = with_pairing(pair, fn)
        r = dict(rec, kernel=label, block=block, density=density, ms=ms,
                 tflops=work / ms / 1e9, over_dense=ms / (density * dense_ms))
        if ref is None:
            ref = (label, o)
        else:
            r["rel_l2_vs"] = ref[0]
            r["rel_l2"] = rel_l2(o, ref[1])
        log(out, r)
        rows.append(r)
    del ro, ci


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--grids", default="cube32,wan480p")
    ap.add_argument("--variants", default="pair_order,rounds_shared,rounds,rounds_consecutive",
                    help="64-token variants, comma-separated: " + ",".join(VARIANTS))
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--fill-only", action="store_true",
                    help="print the window masks' fill of paired stages (CPU) and stop")
    args = ap.parse_args()
    if args.fill_only:
        return print_fills()
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench_pair64.py: unknown variants {unknown}; known: {list(VARIANTS)}")
    ops = sparseplan.load()
    H = args.heads
    rows = []
    for D in (int(d) for d in args.dims.split(",")):
        for gname in args.grids.split(","):
            grid = GRIDS[gname]
            for block in (128, 64):
                tile, N, gen, q, k, v, kv_valid = tile_inputs(grid, block, H, D)
                dense_ms = bench(lambda: ops.dense_attention(q, k, v), warmup_ms=25, rep_ms=150)
                base = dict(D=D, H=H, grid=gname, N=N)
                log(args.out, dict(base, kernel="dense", block=block, ms=dense_ms,
                                   tflops=4.0 * H * D * N * N / dense_ms / 1e9))
                for radius in WINDOWS:
                    mask, _ = window_mask(grid, tile, radius, H)
                    run_mask(ops, dict(base, mask="window", window=list(radius)), q, k, v, mask,
                             block, kv_valid, dense_ms, args.out, rows, grid, names)
                if gname == "cube32":
                    nb = N // block
                    for d in RANDOM_DENSITIES:
                        mask = random_mask(H, nb, nb, [d], gen)
                        run_mask(ops, dict(base, mask=f"random {d:.4g}"), q, k, v, mask, block,
                                 None, dense_ms, args.out, rows, grid, names)
                del q, k, v
                torch.cuda.empty_cache()

    # Table: each 64-block row against the 128-block row of the same D, grid and mask.
    b128 = {(r["D"], r["grid"], str(r.get("window", r["mask"]))): r for r in rows
            if r["kernel"] == "b128"}
    print(f"\n{'D':>4} {'grid':>8} {'mask':>14} {'kernel':>13} {'density':>8} {'ms':>8} "
          f"{'TFLOP/s':>8} {'vs b128':>8} {'t/(d*dense)':>11}")
    for r in rows:
        key = (r["D"], r["grid"], str(r.get("window", r["mask"])))
        ref = b128.get(key)
        ratio = r["tflops"] / ref["tflops"] if ref else float("nan")
        print(f"{r['D']:>4} {r['grid']:>8} {key[2]:>14} {r['kernel']:>13} {r['density']:8.4f} "
              f"{r['ms']:8.3f} {r['tflops']:8.1f} {ratio:8.3f} {r['over_dense']:11.3f}")


if __name__ == "__main__":
    main()
