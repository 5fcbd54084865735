#!/usr/bin/env python3
"""One dense, one block-mass and one block-sparse (density 1/16) launch at the Wan2.1-1.3B
shape, for ncu:

  ncu --kernel-name regex:'ws_kernel' --launch-count 3 --section SpeedOfLight \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section WarpStateStats --print-details all python3 bench/profile_kernels.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparseplan  # noqa: E402
from bench_attention import SHAPES, mask_to_csr, random_mask, seeded_qkv  # noqa: E402

H, N, D = SHAPES["wan1.3b"]
BLOCK = 128
ops = sparseplan.load()
gen, q, k, v = seeded_qkv("wan1.3b")
nb = (N + BLOCK - 1) // BLOCK
ro, ci = mask_to_csr(random_mask(H, nb, nb, [1 / 16], gen))
torch.cuda.synchronize()
_, lse = ops.dense_attention(q, k, v)
ops.block_mass(q, k, lse, BLOCK, BLOCK)
ops.block_sparse_attention(q, k, v, ro, ci, BLOCK, BLOCK)
torch.cuda.synchronize()
