#!/usr/bin/env python3
"""Our dense attention against cuDNN SDPA, timed alternately on the same tensors (--reps rounds
of ours then cuDNN), so both meet the same clock and power state. At the large shapes the H100
runs at its 700 W power cap, where a single sequence of measurements can be several percent
off; bench_attention.py measures each kernel once.

  PYTHONPATH=python python3 bench/dense_vs_cudnn.py --shapes wan14b,hunyuan --reps 3
"""
import argparse
import json
import os
import sys

import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparseplan  # noqa: E402
from bench_attention import SHAPES, bench, seeded_qkv  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="wan14b,hunyuan")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    ops = sparseplan.load()
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
        H, N, D = SHAPES[name]
        _, q, k, v = seeded_qkv(name)
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
        flops = 4.0 * H * N * N * D
        for rep in range(args.reps):
            ours = bench(lambda: ops.dense_attention(q, k, v))
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                cudnn = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt))
            print(json.dumps(dict(shape=name, rep=rep, ours_ms=ours, cudnn_ms=cudnn,
                                  ours_tflops=flops / ours / 1e9, cudnn_tflops=flops / cudnn / 1e9,
                                  ours_over_cudnn=cudnn / ours)), flush=True)


if __name__ == "__main__":
    main()
