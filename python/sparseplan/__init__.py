"""Loads the sparseplan torch ops (torch.ops.sparseplan.*) from the built shared library.

The library is looked up in $SPARSEPLAN_OPS_LIB, then in the repository's build folders
(build-gpu/, build/, build-*/) under runtime/ops/.
"""
import glob
import os

import torch

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIB_NAME = "libsparseplan_ops.so"


def find_library():
    env = os.environ.get("SPARSEPLAN_OPS_LIB")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"SPARSEPLAN_OPS_LIB={env} does not exist")
        return env
    candidates = [os.path.join(_ROOT, d, "runtime", "ops", _LIB_NAME)
                  for d in ("build-gpu", "build")]
    candidates += sorted(glob.glob(os.path.join(_ROOT, "build-*", "runtime", "ops", _LIB_NAME)))
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        f"{_LIB_NAME} not found (looked in {', '.join(candidates)}); build the target "
        "sparseplan_ops or set SPARSEPLAN_OPS_LIB")


_loaded = None


def load(path=None):
    """Loads the ops library once and returns torch.ops.sparseplan."""
    global _loaded
    if _loaded is None:
        _loaded = path or find_library()
        torch.ops.load_library(_loaded)
    return torch.ops.sparseplan


def dense_attention(q, k, v, scale=None):
    return load().dense_attention(q, k, v, scale)


def block_sparse_attention(q, k, v, row_offsets, col_indices, block_q, block_k,
                           kv_block_valid=None, scale=None):
    return load().block_sparse_attention(q, k, v, row_offsets, col_indices, block_q, block_k,
                                         kv_block_valid, scale)


def block_mass(q, k, lse, block_q, block_k, q_block_valid=None, kv_block_valid=None,
               scale=None):
    return load().block_mass(q, k, lse, block_q, block_k, q_block_valid, kv_block_valid, scale)


def select_blocks(mass, mass_target, top_k=0, min_blocks=1, max_blocks=0, forced=None):
    return load().select_blocks(mass, mass_target, top_k, min_blocks, max_blocks, forced)


def reorder_tokens(x, index):
    return load().reorder_tokens(x, index)
