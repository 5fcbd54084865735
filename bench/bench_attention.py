#!/usr/bin/env python3
"""Attention kernel benchmark (GPU machine, torch 2.11): our dense and block-sparse attention,
block mass and online selection against PyTorch SDPA (cuDNN, flash) and FlexAttention with the
same block mask. B=1, bf16, forward. TFLOP/s = 4*H*N^2*D*density / time.

  PYTHONPATH=python python3 bench/bench_attention.py [--shapes wan1.3b,cogvideox] [--out DIR]

Writes one JSON line per measurement to DIR/bench_attention.jsonl and prints a table.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import sparseplan  # noqa: E402
from jsonl_log import log_line  # noqa: E402  (bench/, the script's folder)

SHAPES = {  # name: (H, N video + text, D)
    "wan1.3b": (12, 32760, 128),
    "cogvideox": (48, 17776, 64),
    "wan14b": (40, 75600, 128),
    "hunyuan": (24, 118800 + 256, 128),
}
DENSITIES = [1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16]
MIXED = [1.0, 1 / 4, 1 / 16, 1 / 8, 1 / 2, 1 / 16]  # cycled over heads
BLOCK = 128


def bench(fn, warmup_ms=50, rep_ms=300, min_calls=5):
    """Median ms of at least min_calls timed calls (triton's do_bench, which clears L2 before each
    call): with a fixed budget alone, a 200 ms kernel would be timed once or twice."""
    import triton.testing
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    call_ms = (time.perf_counter() - start) * 1e3
    return triton.testing.do_bench(fn, warmup=warmup_ms, rep=max(rep_ms, min_calls * call_ms),
                                   return_mode="median")


def rel_l2(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def random_qkv(N, H, D, gen):
    """q, k, v: bf16 [1, N, H, D], standard normal."""
    return tuple(torch.randn(1, N, H, D, device="cuda", dtype=torch.bfloat16, generator=gen)
                 for _ in range(3))


def seeded_qkv(name, seed=1):
    """A CUDA generator seeded with `seed`, and q, k, v for SHAPES[name] drawn from it: where
    every bench script starts (the generator goes on to draw the masks)."""
    H, N, D = SHAPES[name]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return (gen, *random_qkv(N, H, D, gen))


def random_mask(H, nqb, nkb, densities, gen):
    """[H, nqb, nkb] bool: each row keeps round(d * nkb) random key blocks (at least 1)."""
    mask = torch.zeros(H, nqb, nkb, dtype=torch.bool, device="cuda")
    for h in range(H):
        d = densities[h % len(densities)]
        keep = max(1, round(d * nkb))
        scores = torch.rand(nqb, nkb, device="cuda", generator=gen)
        idx = scores.topk(keep, dim=1).indices
        mask[h].scatter_(1, idx, True)
    return mask


def mask_to_csr(mask):
    """[H, nqb, nkb] -> row_offsets [1, H, nqb + 1] (global offsets), col_indices (sorted)."""
    H, nqb, nkb = mask.shape
    counts = mask.sum(-1).flatten().to(torch.int64)
    offs = torch.zeros(H * nqb + 1, dtype=torch.int64, device=mask.device)
    offs[1:] = counts.cumsum(0)
    row_offsets = torch.empty(H, nqb + 1, dtype=torch.int32, device=mask.device)
    flat = offs[:-1].view(H, nqb)
    row_offsets[:, :nqb] = flat.to(torch.int32)
    row_offsets[:, nqb] = offs[nqb::nqb].to(torch.int32)
    cols = mask.nonzero()[:, 2].to(torch.int32).contiguous()
    return row_offsets.unsqueeze(0).contiguous(), cols


def flex_block_mask(mask, N):
    from torch.nn.attention.flex_attention import BlockMask
    H, nqb, nkb = mask.shape
    counts = mask.sum(-1).to(torch.int32)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    zeros = torch.zeros_like(counts)
    args = dict(full_kv_num_blocks=counts[None], full_kv_indices=order[None], BLOCK_SIZE=BLOCK)
    try:
        return BlockMask.from_kv_blocks(zeros[None], order[None], seq_lengths=(N, N), **args)
    except TypeError:
        return BlockMask.from_kv_blocks(zeros[None], order[None], **args)


def log(out, rec):
    log_line(out, "bench_attention.jsonl", rec)


def check_ops():
    """Our CUDA ops against our CPU ops (the float32 references) on small shapes."""
    ops = sparseplan.load()
    torch.manual_seed(0)
    res = {}
    for D in (64, 128):
        q, k, v = (torch.randn(1, 300, 2, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o, l = ops.dense_attention(q, k, v)
        oc, lc = ops.dense_attention(q.cpu(), k.cpu(), v.cpu())
        res[f"dense_d{D}"] = rel_l2(o.cpu(), oc)
        mask = random_mask(2, 3, 3, [0.5, 1.0], None)
        ro, ci = mask_to_csr(mask)
        os_, ls = ops.block_sparse_attention(q, k, v, ro, ci, 128, 128)
        osc, lsc = ops.block_sparse_attention(q.cpu(), k.cpu(), v.cpu(), ro.cpu(), ci.cpu(), 128, 128)
        res[f"sparse_d{D}"] = rel_l2(os_.cpu(), osc)
        m = ops.block_mass(q, k, l, 128, 128)
        mc = ops.block_mass(q.cpu(), k.cpu(), l.cpu(), 128, 128)
        res[f"mass_d{D}"] = rel_l2(m.cpu(), mc)
        sro, sci = ops.select_blocks(m, 0.9, 0, 1, 0, None)
        sroc, scic = ops.select_blocks(m.cpu(), 0.9, 0, 1, 0, None)
        n = int(sroc.flatten()[-1])
        res[f"select_equal_d{D}"] = bool(torch.equal(sro.cpu(), sroc) and torch.equal(sci[:n].cpu(), scic))
    idx = torch.randperm(300, device="cuda").to(torch.int32)
    x = torch.randn(1, 300, 2, 64, device="cuda", dtype=torch.bfloat16)
    res["reorder_equal"] = bool(torch.equal(ops.reorder_tokens(x, idx).cpu(), ops.reorder_tokens(x.cpu(), idx.cpu())))
    return res


def run_shape(name, out, args):
    H, N, D = SHAPES[name]
    ops = sparseplan.load()
    gen, q, k, v = seeded_qkv(name)
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))  # [B, H, N, D] views for SDPA / flex
    flops = 4.0 * H * N * N * D
    rec = dict(shape=name, H=H, N=N, D=D)

    t_ours = bench(lambda: ops.dense_attention(q, k, v))
    o, lse = ops.dense_attention(q, k, v)
    log(out, dict(rec, kernel="ours_dense", ms=t_ours, tflops=flops / t_ours / 1e9,
                  config=os.environ.get("SPARSEPLAN_SM90_DENSE", "default")))
    if args.dense_only:
        return
    for backend, label in ((SDPBackend.CUDNN_ATTENTION, "sdpa_cudnn"),
                           (SDPBackend.FLASH_ATTENTION, "sdpa_flash")):
        try:
            with sdpa_kernel(backend):
                ref = F.scaled_dot_product_attention(qt, kt, vt)
                t = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt))
            log(out, dict(rec, kernel=label, ms=t, tflops=flops / t / 1e9,
                          ours_vs_it_rel_l2=rel_l2(o.transpose(1, 2), ref)))
            del ref
        except Exception as e:  # a backend may not support the shape
            log(out, dict(rec, kernel=label, error=str(e)[:200]))

    t_mass = bench(lambda: ops.block_mass(q, k, lse, BLOCK, BLOCK))
    log(out, dict(rec, kernel="ours_block_mass", ms=t_mass, ratio_to_ours_dense=t_mass / t_ours))

    flex = None
    if not args.no_flex:
        from torch.nn.attention.flex_attention import flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
    nqb = nkb = (N + BLOCK - 1) // BLOCK
    cases = [(f"{d:.4g}", [d]) for d in DENSITIES] + [("mixed", MIXED)]
    for label, dens in cases:
        mask = random_mask(H, nqb, nkb, dens, gen)
        density = mask.float().mean().item()
        ro, ci = mask_to_csr(mask)
        t = bench(lambda: ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK))
        r = dict(rec, density_label=label, density=density)
        ideal = density * t_ours
        log(out, dict(r, kernel="ours_sparse", ms=t, tflops=flops * density / t / 1e9,
                      time_over_density_x_dense=t / ideal))
        if label == "1":
            os_, _ = ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK)
            log(out, dict(r, kernel="ours_sparse_vs_dense_rel_l2", value=rel_l2(os_, o)))
            del os_
        if flex is not None:
            try:
                bm = flex_block_mask(mask, N)
                tf = bench(lambda: flex(qt, kt, vt, block_mask=bm))
                log(out, dict(r, kernel="flex", ms=tf, tflops=flops * density / tf / 1e9,
                              ours_speedup=tf / t))
            except Exception as e:
                log(out, dict(r, kernel="flex", error=str(e)[:300]))
        del ro, ci, mask

    # Online selection on the mass of real attention (mass target 0.9, at most 1/4 of blocks).
    mass = ops.block_mass(q, k, lse, BLOCK, BLOCK)
    sel = lambda: ops.select_blocks(mass, 0.9, 0, 1, max(1, nkb // 4), None)
    t_sel = bench(sel)
    ro, ci = sel()
    t_sp = bench(lambda: ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK))
    n = int(ro.flatten()[-1])
    log(out, dict(rec, kernel="ours_select", ms=t_sel, selected_density=n / (H * nqb * nkb),
                  sparse_ms=t_sp, ratio_to_sparse=t_sel / t_sp))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="wan1.3b,cogvideox,wan14b,hunyuan")
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--dense-only", action="store_true", help="only our dense kernel")
    args = ap.parse_args()
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    if not args.skip_check:
        log(args.out, dict(kernel="ops_check", **check_ops()))
    for name in args.shapes.split(","):
        t0 = time.time()
        run_shape(name, args.out, args)
        print(f"# {name} done in {time.time() - t0:.0f} s", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
