#!/usr/bin/env python3
"""Fixed costs of a block-sparse call at the Wan2.1-1.3B shape (GPU machine, torch 2.11): rows
with 0, 1, 2 and 16 key blocks of 128 (16 = density 1/16), so the per-call and per-row costs
can be read off the slope and intercept; then density 1/4 with a share of the key blocks padded
(kv_block_valid = 96 of 128 keys, as tile order pads partial tiles), whose chunks take the
producer's zero-fill path instead of TMA. Prints one JSON line per layout.

  PYTHONPATH=python python3 bench/sparse_overhead.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparseplan  # noqa: E402
from bench_attention import SHAPES, bench, mask_to_csr, random_mask, seeded_qkv  # noqa: E402

H, N, D = SHAPES["wan1.3b"]
BLOCK = 128
ops = sparseplan.load()
gen, q, k, v = seeded_qkv("wan1.3b")
nb = (N + BLOCK - 1) // BLOCK
dense_ms = bench(lambda: ops.dense_attention(q, k, v))
print(json.dumps({"layout": "dense kernel", "ms": dense_ms}))
for blocks in (0, 1, 2, 16):
    if blocks == 0:
        ro = torch.zeros(1, H, nb + 1, dtype=torch.int32, device="cuda")
        ci = torch.zeros(1, dtype=torch.int32, device="cuda")  # no row reads it
    else:
        ro, ci = mask_to_csr(random_mask(H, nb, nb, [blocks / nb], gen))
    ms = bench(lambda: ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK))
    # GPU time of each kernel the call launches (work-list sort vs attention).
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK)
        torch.cuda.synchronize()
    kernels = {e.key[:60]: round(e.device_time_total / 1000, 4) for e in prof.key_averages()
               if e.device_time_total > 0}
    print(json.dumps({"layout": f"{blocks} key blocks per row", "ms": ms,
                      "over_blocks_x_dense_per_block": ms / (dense_ms * blocks / nb) if blocks else None,
                      "kernel_ms": kernels}))

ro, ci = mask_to_csr(random_mask(H, nb, nb, [1 / 4], gen))
for share in (0.0, 0.125, 0.25, 0.5):
    valid = torch.full((nb,), BLOCK, dtype=torch.int32, device="cuda")
    valid[(torch.rand(nb, device="cuda", generator=gen) < share)] = 96
    valid[-1] = N - (nb - 1) * BLOCK
    ms = bench(lambda: ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK, valid))
    print(json.dumps({"layout": f"density 1/4, {share:.3f} of key blocks padded", "ms": ms}))
