#!/usr/bin/env python3
"""Block-sparse attention on masks compiled from real plans (GPU machine, torch 2.11).

For Wan2.1-1.3B 480p 81 frames (grid 21x30x52, partial tiles at the edges) and HunyuanVideo 720p
129 frames (33x45x80 + 256 text tokens), and wan-mini at the end-to-end benchmark's 32x32x32
(`wanmini`), block sizes 64 and 128, this script
  1. writes plans with the CLI: sliding tile, radial and spatial/temporal baselines
     (`sparseplan baseline --kind ...`) and a searched plan (a synthetic capture at the same
     grid, `sparseplan synth-capture` + `sparseplan search`), and compiles one layer of each with
     `sparseplan layout PLAN --export-csr FILE` (CSR layouts, token order, valid tokens per block);
  2. times, in one process and alternating between them, on random bf16 q, k, v [1, N, H, D]:
     - ours: sparseplan::block_sparse_attention on the tile-order tensors;
     - flex: FlexAttention with the same block mask at the same block size (partial blocks get
       a mask_mod hiding their padded keys; kernel_options BLOCK_M/BLOCK_N 64 for 64-token blocks);
     - cuDNN dense attention (SDPA) and our dense kernel on the model's N tokens;
     - the whole plan call through a reorder pass: gather q, k, v into tile order
       (sparseplan::reorder_tokens), the kernel, scatter the output back; and the gather and
       scatter alone (target: at most 5% of the kernel's time);
     - fused: sparseplan::video_block_sparse_attention on the model-order tensors, the kernel
       reading and writing model order itself; its output is checked against `whole`;
     - tile_major: the same op on tensors in the tile-major order (tile order without its
       padding), the order the runner keeps its whole token stream in where each block is one
       tile and there is no text (Wan), so that no call reorders; checked against `whole`;
     - ours_pairs, tile_major_pairs (64-token blocks): the same with the layout's pair order
       (`q_pair_order`, plan/query_pairs.h: which query blocks share a 128-row tile);
     - stream: what that costs the runner per forward (its hidden state [1, N, H*D] float32 and
       RoPE angles moved into the order, the output moved back), which amortised over the
       model's layers is the reorder share of one call (`stream_share_of_kernel`).
Work counts padding: `work` = kept blocks x block^2 over N^2 (dense attention on the model's
tokens), so `sparse_over_work_x_dense` = ours / (work x cuDNN dense) is the issue's
"sparse time / (d x dense time)".

  PYTHONPATH=python python3 bench/plan_masks.py [--bin build-gpu/cli/sparseplan] [--out DIR]
      [--shapes wan480p,hunyuan720p] [--blocks 64,128] [--reps 3] [--prepare-only]

--prepare-only writes and checks the masks without a GPU (CSR structure, densities against the
layout report, token order a permutation); it is what the CPU machine can run.
Writes one JSON line per measurement to DIR/plan_masks.jsonl and prints a table.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

from jsonl_log import log_line  # bench/, the script's folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHAPES = {  # name: model preset, grid name, heads, head_dim
    "wan480p": ("wan2.1-1.3b", "480p-81f", 12, 128),
    "hunyuan720p": ("hunyuanvideo", "720p-129f", 24, 128),
    "wanmini": ("wan-mini", "32,32,32", 3, 128),  # bench/e2e_runner.py's token grid
}
LAYERS = {"wan480p": 30, "hunyuan720p": 60, "wanmini": 8}  # self-attention calls per forward
TILES = {64: "4,4,4", 128: "4,4,8"}  # tile shapes filling one block
KINDS = ["sliding-tile", "radial", "spatial-temporal"]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def read_safetensors(path):
    """{name: numpy array}, metadata: the format (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"I64": np.int64, "F32": np.float32, "F16": np.float16}
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return out, meta


def make_plans(bin_, shape, block, work):
    """Plan JSON paths by kind for one shape and block size (written once into work/)."""
    model, grid, heads, _ = SHAPES[shape]
    tile = TILES[block]
    plans = {}
    for kind in KINDS:
        path = os.path.join(work, f"{shape}-b{block}-{kind}.json")
        if not os.path.exists(path):
            run([bin_, "baseline", "--kind", kind, "--model", model, "--grid", grid, "--tile", tile,
                 "--block-size", str(block), "--out", path])
        plans[kind] = path
    # The searched plan: a synthetic capture at the model's grid (video tokens only), one layer;
    # its heads are cycled over the model's heads.
    path = os.path.join(work, f"{shape}-b{block}-searched.json")
    if not os.path.exists(path):
        with open(plans["sliding-tile"]) as f:
            grid_of = json.load(f)["grid"]
        g = (grid_of["frames"], grid_of["height"], grid_of["width"])
        capture = os.path.join(work, f"{shape}-b{block}-synth.h5")
        synth_heads = min(heads, 6)
        run([bin_, "synth-capture", "--out", capture, "--grid", f"{g[0]}x{g[1]}x{g[2]}",
             "--tile", tile.replace(",", "x"), "--layers", "1", "--heads", str(synth_heads),
             "--prompts", "2", "--steps", "1", "--block-size", str(block), "--model", model,
             "--quiet"])
        run([bin_, "search", capture, "--recall", "0.9", "--out", path, "--quiet"])
        os.remove(capture)
    plans["searched"] = path
    return plans


def export(bin_, plan, work):
    path = plan[:-len(".json")] + ".csr.safetensors"
    if not os.path.exists(path):
        report = run([bin_, "layout", plan, "--layer", "0", "--export-csr", path])
        with open(path + ".report.txt", "w") as f:
            f.write(report)
    return path


def load_mask(path, heads):
    """The exported layer as numpy arrays, heads cycled up to `heads`, plus its metadata."""
    t, meta = read_safetensors(path)
    nb = int(meta["blocks"])
    ro, ci = t["row_offsets"], t["col_indices"]
    hp = ro.shape[0]
    rows, cols = [], []
    for h in range(heads):
        s = ro[h % hp]
        rows.append(np.diff(s))
        cols.append(ci[s[0]:s[-1]])
    counts = np.concatenate(rows)
    offsets = np.zeros(heads * nb + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    row_offsets = np.empty((heads, nb + 1), dtype=np.int64)
    row_offsets[:, :nb] = offsets[:-1].reshape(heads, nb)
    row_offsets[:, nb] = offsets[nb::nb]
    pairs = t["q_pair_order"]
    return dict(row_offsets=row_offsets, col_indices=np.concatenate(cols),
                q_pair_order=np.stack([pairs[h % hp] for h in range(heads)]),
                token_of_slot=t["token_of_slot"], slot_of_token=t["slot_of_token"],
                block_valid=t["block_valid"], density=t["density"], nb=nb,
                block=int(meta["block_size"]), tokens=int(meta["tokens"]), meta=meta)


def check_mask(m):
    """What the CPU can check: CSR well formed, sorted, in range; the token order a permutation
    of the model's tokens into the slots; densities as exported."""
    nb, ro, ci = m["nb"], m["row_offsets"], m["col_indices"]
    assert ro[0, 0] == 0 and ro[-1, -1] == len(ci), "row_offsets do not span col_indices"
    for h in range(ro.shape[0]):
        assert np.all(np.diff(ro[h]) >= 0), f"head {h}: row_offsets decrease"
    assert ci.min() >= 0 and ci.max() < nb, "col_indices out of range"
    tos, sot = m["token_of_slot"], m["slot_of_token"]
    assert len(tos) == nb * m["block"] and len(sot) == m["tokens"]
    assert np.array_equal(tos[sot], np.arange(m["tokens"])), "token order is not a permutation"
    valid = (tos.reshape(nb, m["block"]) >= 0).sum(1)
    assert np.array_equal(valid, m["block_valid"]), "block_valid disagrees with the token order"
    hp = len(m["density"])
    for h, order in enumerate(m["q_pair_order"]):
        assert np.array_equal(np.sort(order), np.arange(nb)), \
            f"head {h}: pair order is no permutation"
    per_head = np.diff(ro[:hp, [0, -1]], axis=1).reshape(-1) / float(nb * nb)
    assert np.allclose(per_head, m["density"], atol=1e-6), "densities disagree with the export"
    return dict(blocks=nb, density=float(np.diff(ro[:, [0, -1]], axis=1).sum() / (ro.shape[0] * nb * nb)),
                padded_fraction=(nb * m["block"] - m["tokens"]) / m["tokens"])


def bench_mask(name, m, shape, args, out):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import sparseplan
    from bench_attention import bench, rel_l2

    ops = sparseplan.load()
    _, _, H, D = SHAPES[shape]
    B, nb, N = m["block"], m["nb"], m["tokens"]
    slots = nb * B
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(1)
    q, k, v = (torch.randn(1, N, H, D, device=dev, dtype=torch.bfloat16, generator=gen)
               for _ in range(3))
    i32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32)).to(dev)
    ro, ci = i32(m["row_offsets"]).unsqueeze(0).contiguous(), i32(m["col_indices"])
    gather, scatter = i32(m["token_of_slot"]), i32(m["slot_of_token"])
    valid = i32(m["block_valid"])
    kv_valid = valid if bool((valid < B).any()) else None
    qt, kt, vt = (ops.reorder_tokens(x, gather) for x in (q, k, v))
    nnz = int(m["row_offsets"][-1, -1])
    work = nnz * B * B / (H * float(N) * N)  # over dense attention on the model's tokens
    density = nnz / (H * float(nb) * nb)
    flops_dense = 4.0 * H * N * N * D

    pair_order = i32(m["q_pair_order"]).unsqueeze(0).contiguous()

    def ours():
        return ops.block_sparse_attention(qt, kt, vt, ro, ci, B, B, kv_valid)

    def ours_pairs():
        return ops.block_sparse_attention(qt, kt, vt, ro, ci, B, B, kv_valid, None, pair_order)

    def reorder():
        a, b, c = (ops.reorder_tokens(x, gather) for x in (q, k, v))
        return ops.reorder_tokens(a, scatter)

    def whole():
        a, b, c = (ops.reorder_tokens(x, gather) for x in (q, k, v))
        o, _ = ops.block_sparse_attention(a, b, c, ro, ci, B, B, kv_valid)
        return ops.reorder_tokens(o, scatter)

    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(qh, kh, vh)

    def ours_dense():
        return ops.dense_attention(q, k, v)

    fns = dict(ours=ours, whole=whole, reorder=reorder, cudnn=cudnn, ours_dense=ours_dense)
    pairs_err = tile_major_pairs_err = None
    if B == 64:  # the pair order only matters to 64-token query blocks
        fns["ours_pairs"] = ours_pairs
        pairs_err = rel_l2(ours_pairs()[0], ours()[0])
    meta = m["meta"]
    fused_err = tile_major_err = None
    if int(meta["text_tokens"]) == 0 and np.prod([int(x) for x in meta["tile"].split("x")]) <= B:
        grid = [int(x) for x in meta["grid"].split(",")]
        tile = [int(x) for x in meta["tile"].split("x")]

        def fused():
            return ops.video_block_sparse_attention(q, k, v, ro, ci, grid, tile, B)

        tokens = gather[gather >= 0].long()
        qm, km, vm = (x[:, tokens].contiguous() for x in (q, k, v))

        def tile_major():
            return ops.video_block_sparse_attention(qm, km, vm, ro, ci, grid, tile, B, True)

        def tile_major_pairs():
            return ops.video_block_sparse_attention(qm, km, vm, ro, ci, grid, tile, B, True, None,
                                                    pair_order)

        hidden = torch.randn(1, N, H * D, device=dev)
        angles = torch.randn(N, D // 2, device=dev, dtype=torch.float64)

        def stream():
            x = hidden.index_select(1, tokens)
            angles.index_select(0, tokens)
            return torch.empty_like(x).index_copy_(1, tokens, x)

        fo, flse = fused()
        wo = whole()
        fused_err = rel_l2(fo, wo)
        tile_major_err = rel_l2(tile_major()[0], wo[:, tokens])
        fns["fused"] = fused
        fns["tile_major"] = tile_major
        fns["stream"] = stream
        if B == 64:
            fns["tile_major_pairs"] = tile_major_pairs
            tile_major_pairs_err = rel_l2(tile_major_pairs()[0], wo[:, tokens])
    flex_err = None
    if not args.no_flex:
        try:
            from torch.nn.attention.flex_attention import BlockMask, flex_attention
            flex = torch.compile(flex_attention, dynamic=False)
            counts = torch.diff(ro[0], dim=-1).to(torch.int32)  # [H, nb]
            full = valid[ci.long()] == B  # a column whose keys all exist needs no mask_mod
            mask = torch.zeros(H, nb, nb, dtype=torch.int8, device=dev)
            row_of = torch.repeat_interleave(torch.arange(H * nb, device=dev), counts.reshape(-1).long())
            mask.view(-1, nb)[row_of, ci.long()] = torch.where(full, 2, 1).to(torch.int8)
            # Full blocks (2) and partial ones (1), each listed first in their row.
            full_n = (mask == 2).sum(-1).to(torch.int32)
            part_n = (mask == 1).sum(-1).to(torch.int32)
            full_idx = torch.argsort((mask != 2).to(torch.int8), dim=-1, stable=True).to(torch.int32)
            part_idx = torch.argsort((mask != 1).to(torch.int8), dim=-1, stable=True).to(torch.int32)
            key_ok = gather >= 0

            def mask_mod(b, h, q_idx, kv_idx):
                return key_ok[kv_idx]

            bm = BlockMask.from_kv_blocks(part_n[None], part_idx[None], full_n[None], full_idx[None],
                                          BLOCK_SIZE=B, mask_mod=mask_mod, seq_lengths=(slots, slots))
            opts = {"BLOCK_M": 64, "BLOCK_N": 64} if B == 64 else None
            qth, kth, vth = (x.transpose(1, 2) for x in (qt, kt, vt))

            def flex_call():
                return flex(qth, kth, vth, block_mask=bm, kernel_options=opts)

            fo = flex_call().transpose(1, 2)
            oo, _ = ours()
            rows = gather >= 0
            flex_err = rel_l2(oo[:, rows], fo[:, rows])
            fns["flex"] = flex_call
        except Exception as e:  # FlexAttention versions differ; record why it did not run
            log(out, dict(shape=shape, plan=name, block=B, kernel="flex", error=str(e)[:300]))
    times = {key: [] for key in fns}
    for _ in range(args.reps):
        for key, fn in fns.items():
            times[key].append(bench(fn))
    med = {key: float(np.median(t)) for key, t in times.items()}
    rec = dict(shape=shape, plan=name, block=B, tokens=N, slots=slots, heads=H, head_dim=D,
               density=density, work=work, padded_fraction=(slots - N) / N,
               ms=med, flex_vs_ours_rel_l2=flex_err,
               ours_tflops=4.0 * D * B * B * nnz / med["ours"] / 1e9,
               dense_tflops_cudnn=flops_dense / med["cudnn"] / 1e9,
               sparse_over_work_x_dense=med["ours"] / (work * med["cudnn"]),
               reorder_share_of_kernel=med["reorder"] / med["ours"],
               whole_over_kernel=med["whole"] / med["ours"])
    if "flex" in med:
        rec["flex_over_ours"] = med["flex"] / med["ours"]
    if "ours_pairs" in med:
        rec["pairs_over_ours"] = med["ours_pairs"] / med["ours"]
        rec["ours_pairs_tflops"] = 4.0 * D * B * B * nnz / med["ours_pairs"] / 1e9
        rec["pairs_sparse_over_work_x_dense"] = med["ours_pairs"] / (work * med["cudnn"])
        rec["pairs_vs_ours_rel_l2"] = pairs_err
    if "tile_major_pairs" in med:
        rec["tile_major_pairs_over_kernel"] = med["tile_major_pairs"] / med["ours"]
        rec["tile_major_pairs_vs_whole_rel_l2"] = tile_major_pairs_err
    if "fused" in med:
        rec["fused_over_kernel"] = med["fused"] / med["ours"]
        rec["fused_over_whole"] = med["fused"] / med["whole"]
        rec["fused_vs_whole_rel_l2"] = fused_err
        rec["tile_major_over_kernel"] = med["tile_major"] / med["ours"]
        rec["tile_major_vs_whole_rel_l2"] = tile_major_err
        rec["stream_share_of_kernel"] = med["stream"] / (LAYERS[shape] * med["ours"])
    log(out, rec)
    return rec


def log(out, rec):
    log_line(out, "plan_masks.jsonl", rec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-gpu", "cli", "sparseplan"))
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--work", default="", help="plans and exported masks (default: OUT/plan-masks)")
    ap.add_argument("--shapes", default="wan480p,hunyuan720p")
    ap.add_argument("--blocks", default="64,128")
    ap.add_argument("--reps", type=int, default=3, help="alternating rounds over the methods")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--prepare-only", action="store_true", help="write and check the masks only")
    args = ap.parse_args()
    out = args.out
    if out:
        os.makedirs(out, exist_ok=True)
    work = args.work or os.path.join(out or ".", "plan-masks")
    os.makedirs(work, exist_ok=True)
    if not args.prepare_only:
        import torch
        print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} "
              f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    rows = []
    for shape in args.shapes.split(","):
        for block in (int(b) for b in args.blocks.split(",")):
            for name, plan in make_plans(args.bin, shape, block, work).items():
                m = load_mask(export(args.bin, plan, work), SHAPES[shape][2])
                info = check_mask(m)
                log(out, dict(shape=shape, plan=name, block=block, mask_check="ok", **info))
                if not args.prepare_only:
                    rows.append(bench_mask(name, m, shape, args, out))
                    import torch
                    torch.cuda.empty_cache()
    if rows:
        print(f"\n{'shape':12} {'plan':17} {'blk':>3} {'dens':>6} {'work':>6} {'ours ms':>8} "
              f"{'flex ms':>8} {'cudnn ms':>8} {'ours/(w*dense)':>14} {'TFLOP/s':>8} "
              f"{'reorder':>8} {'fused/kern':>10} {'fused/whole':>11} {'tmajor/kern':>11} "
              f"{'stream':>7} {'pairs/ours':>10} {'tm pairs/kern':>13}")
        for r in rows:
            flex = r["ms"].get("flex")
            print(f"{r['shape']:12} {r['plan']:17} {r['block']:>3} {r['density']:6.3f} {r['work']:6.3f} "
                  f"{r['ms']['ours']:8.3f} {flex if flex is None else round(flex, 3)!s:>8} "
                  f"{r['ms']['cudnn']:8.3f} {r['sparse_over_work_x_dense']:14.2f} "
                  f"{r['ours_tflops']:8.0f} {100 * r['reorder_share_of_kernel']:7.1f}% "
                  f"{r.get('fused_over_kernel', float('nan')):10.3f} "
                  f"{r.get('fused_over_whole', float('nan')):11.3f} "
                  f"{r.get('tile_major_over_kernel', float('nan')):11.3f} "
                  f"{100 * r.get('stream_share_of_kernel', float('nan')):6.2f}% "
                  f"{r.get('pairs_over_ours', float('nan')):10.3f} "
                  f"{r.get('tile_major_pairs_over_kernel', float('nan')):13.3f}")


if __name__ == "__main__":
    main()
