"""sparseplan from Python.

The C++ core (``sparseplan._core``, built with the package by ``pip install .``):

- :class:`Plan` -- load and validate a sparsity plan; :class:`PlanError` lists every problem
  with its JSON path;
- :func:`compile_layouts` -- one layer's block layouts (CSR over the tile-order blocks) on a
  device; :func:`query_pair_order` -- the ops' ``q_pair_order`` for such layouts;
- :class:`PlanAttention` -- a plan's attention for (layer, step, branch) on q, k, v;
- :func:`block_mass` -- dense attention with its exact block attention mass;
- :class:`CaptureSession` -- writes a capture file (docs/capture-format.md).

``sparseplan.diffusers`` applies plans to, and captures from, diffusers' Wan2.1 transformer.
The torch ops (``torch.ops.sparseplan.*``) are registered when the package is imported.

Without ``_core`` (a build of only the ops library), :func:`load` finds the ops library in
$SPARSEPLAN_OPS_LIB or the repository's build folders.
"""
import glob
import os

import torch  # LibTorch must be loaded before the extension that links it.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_PACKAGE_DIR))
_LIB_NAME = "libsparseplan_ops.so"

try:
    from ._core import (  # noqa: F401
        BlockMass,
        CaptureSession,
        LayerLayouts,
        Plan,
        PlanAttention,
        PlanError,
        __version__,
        block_mass,
        compile_layouts,
        query_pair_order,
    )
    _core_error = None
except ImportError as e:  # only the ops library was built
    _core_error = e

_API = ("BlockMass", "CaptureSession", "LayerLayouts", "Plan", "PlanAttention", "PlanError",
        "block_mass", "compile_layouts", "query_pair_order")


def __getattr__(name):
    if name in _API:
        raise ImportError(f"sparseplan.{name} needs the extension sparseplan._core, which did "
                          f"not load ({_core_error}); install with `pip install .` or build "
                          "the target sparseplan_core") from _core_error
    raise AttributeError(f"module 'sparseplan' has no attribute '{name}'")


def load_plan(path):
    """Reads and validates a plan file (raises PlanError naming every bad field)."""
    return Plan.load(os.fspath(path))


def find_library():
    """The ops library: beside this file (installed package, build tree), $SPARSEPLAN_OPS_LIB,
    then the repository's build folders (build-gpu/, build/, build-*/)."""
    beside = os.path.join(_PACKAGE_DIR, _LIB_NAME)
    if os.path.isfile(beside):
        return beside
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
        f"{_LIB_NAME} not found (looked in {_PACKAGE_DIR}, {', '.join(candidates)}); install "
        "the package (pip install .), build the target sparseplan_ops or set SPARSEPLAN_OPS_LIB")


_loaded = None


def load(path=None):
    """Loads the ops library once and returns torch.ops.sparseplan.

    With _core the ops are already registered (it links the library); a `path` must then be
    that same library, since the ops can be registered only once per process."""
    global _loaded
    if _loaded is None:
        if _core_error is None:
            _loaded = os.path.join(_PACKAGE_DIR, _LIB_NAME)
            if path and os.path.isfile(_loaded) and not os.path.samefile(path, _loaded):
                raise RuntimeError(f"sparseplan: the ops of {_loaded} are loaded already; "
                                   f"cannot load {path} as well")
        else:
            _loaded = path or find_library()
            torch.ops.load_library(_loaded)
    return torch.ops.sparseplan


def dense_attention(q, k, v, scale=None):
    return load().dense_attention(q, k, v, scale)


def block_sparse_attention(q, k, v, row_offsets, col_indices, block_q, block_k,
                           kv_block_valid=None, scale=None, q_pair_order=None):
    """q_pair_order (int32 [B, H, nqb], optional): with 64-token query blocks on Hopper, which
    blocks share a 128-row tile (order[2i] with order[2i+1]); a scheduling hint, the result is
    the same without it."""
    return load().block_sparse_attention(q, k, v, row_offsets, col_indices, block_q, block_k,
                                         kv_block_valid, scale, q_pair_order)


def video_block_sparse_attention(q, k, v, row_offsets, col_indices, grid, tile, block,
                                 scale=None, tile_major=False, q_pair_order=None):
    """Block-sparse attention with blocks that are the tiles of a video's (frames, height,
    width) grid, q, k, v, out and lse staying in the model's frame-major token order (or with
    tile_major in the tiles' order without padding, see tile_major_tokens). q_pair_order as
    for block_sparse_attention."""
    return load().video_block_sparse_attention(q, k, v, row_offsets, col_indices, list(grid),
                                               list(tile), block, tile_major, scale, q_pair_order)


def block_mass_op(q, k, lse, block_q, block_k, q_block_valid=None, kv_block_valid=None,
                  scale=None):
    """The block_mass torch op on blocks of the given sequence order (no tile reordering)."""
    return load().block_mass(q, k, lse, block_q, block_k, q_block_valid, kv_block_valid, scale)


def select_blocks(mass, mass_target, top_k=0, min_blocks=1, max_blocks=0, forced=None):
    return load().select_blocks(mass, mass_target, top_k, min_blocks, max_blocks, forced)


def reorder_tokens(x, index):
    return load().reorder_tokens(x, index)
