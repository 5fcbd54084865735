"""The torch ops from Python, as a PyTorch pipeline calls them (python/sparseplan).

Runs with the Python whose torch the library was built against (the repository's .venv, or the
GPU machine's python3), on the package folder of the build tree (PYTHONPATH=<build>/python) or
the installed package. On CUDA machines the same checks run on the GPU.
"""
import math
import os

import torch  # noqa: E402

import sparseplan  # noqa: E402
from script_checks import check, finish  # noqa: E402


def rel_l2(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


def masked_reference(q, k, v, mask):
    """Dense softmax attention with a token mask [H, N, N]; q, k, v [1, N, H, D]."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = torch.einsum("bnhd,bmhd->bhnm", q.double(), k.double()) * scale
    s = s.masked_fill(~mask.unsqueeze(0), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return torch.einsum("bhnm,bmhd->bnhd", p, v.double()), lse


def csr(blocks, device):
    """A bool block mask [H, nb, nb] as row_offsets [1, H, nb + 1] (global offsets into one
    col_indices array, each head after the previous one) and col_indices."""
    h, nb, _ = blocks.shape
    offsets, cols = [0], []
    for head in range(h):
        for i in range(nb):
            row = torch.nonzero(blocks[head, i]).flatten().tolist()
            cols += row
            offsets.append(offsets[-1] + len(row))
    row_offsets = torch.tensor([offsets[hh * nb: hh * nb + nb + 1] for hh in range(h)],
                               dtype=torch.int32, device=device).view(1, h, nb + 1)
    return row_offsets, torch.tensor(cols, dtype=torch.int32, device=device)


sparseplan.load(os.environ.get("SPARSEPLAN_OPS_LIB"))
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
torch.manual_seed(0)
for device in devices:
    n, h, d, bs = 256, 2, 64, 64
    q, k, v = (torch.randn(1, n, h, d, device=device) for _ in range(3))
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    out, lse = sparseplan.dense_attention(q.to(dtype), k.to(dtype), v.to(dtype))
    ref, ref_lse = masked_reference(q, k, v, torch.ones(h, n, n, dtype=torch.bool, device=device))
    check(f"{device}: dense attention matches softmax attention", rel_l2(out, ref) < 1e-2)
    check(f"{device}: dense LSE matches", rel_l2(lse, ref_lse) < 1e-3)

    # A block mask per head: head 0 block-diagonal, head 1 also sees key block 0.
    nb = n // bs
    blocks = torch.zeros(h, nb, nb, dtype=torch.bool)
    for i in range(nb):
        blocks[0, i, i] = blocks[1, i, i] = blocks[1, i, 0] = True
    row_offsets, col_indices = csr(blocks, device)
    out, lse = sparseplan.block_sparse_attention(q.to(dtype), k.to(dtype), v.to(dtype),
                                                 row_offsets, col_indices, bs, bs)
    token_mask = blocks.repeat_interleave(bs, 1).repeat_interleave(bs, 2).to(device)
    ref, ref_lse = masked_reference(q, k, v, token_mask)
    check(f"{device}: block-sparse attention matches masked attention", rel_l2(out, ref) < 1e-2)
    check(f"{device}: block-sparse LSE matches", rel_l2(lse, ref_lse) < 1e-3)

    # A pair order (which 64-token query blocks share a tile on Hopper) changes no result; one
    # of the wrong shape is refused.
    pair_order = torch.stack([torch.randperm(nb) for _ in range(h)]).to(torch.int32)
    pair_order = pair_order.view(1, h, nb).to(device)
    out_p, lse_p = sparseplan.block_sparse_attention(q.to(dtype), k.to(dtype), v.to(dtype),
                                                     row_offsets, col_indices, bs, bs,
                                                     q_pair_order=pair_order)
    check(f"{device}: a pair order gives the same attention", rel_l2(out_p, out) < 1e-2)
    check(f"{device}: a pair order gives the same LSE", rel_l2(lse_p, lse) < 1e-3)
    try:
        sparseplan.block_sparse_attention(q.to(dtype), k.to(dtype), v.to(dtype), row_offsets,
                                          col_indices, bs, bs, q_pair_order=pair_order[:, :, 1:])
        check(f"{device}: a pair order of the wrong shape is rejected", False)
    except RuntimeError as e:
        check(f"{device}: the pair order error names it: {str(e).splitlines()[0]}",
              "q_pair_order" in str(e))

    _, full_lse = sparseplan.dense_attention(q, k, v) if device == "cpu" else \
        sparseplan.dense_attention(q.to(dtype), k.to(dtype), v.to(dtype))
    mass = sparseplan.block_mass_op(q.to(dtype), k.to(dtype), full_lse, bs, bs)
    check(f"{device}: block mass has one row per query block", tuple(mass.shape) == (1, h, nb, nb))
    check(f"{device}: block mass rows sum to one",
          bool(torch.allclose(mass.sum(-1).float().cpu(), torch.ones(1, h, nb), atol=1e-3)))
    sel_offsets, sel_cols = sparseplan.select_blocks(mass, 0.9)
    check(f"{device}: selection gives a CSR per head", tuple(sel_offsets.shape) == (1, h, nb + 1))

    # The fused tile order: 4x4x4 tiles over a 5x6x9 grid (partial tiles on every axis) are the
    # blocks; the mask is per tile pair, the tensors stay in frame-major order.
    grid, tile = (5, 6, 9), (4, 4, 4)
    tiles_along = [(g + t - 1) // t for g, t in zip(grid, tile)]
    nt = tiles_along[0] * tiles_along[1] * tiles_along[2]
    f, y, x = torch.meshgrid(*(torch.arange(g) for g in grid), indexing="ij")
    tile_of = ((f // 4 * tiles_along[1] + y // 4) * tiles_along[2] + x // 4).flatten()
    vt = torch.rand(h, nt, nt) < 0.4
    vt |= torch.eye(nt, dtype=torch.bool)  # no empty row
    v_offsets, v_cols = csr(vt, device)
    nv = grid[0] * grid[1] * grid[2]
    qv, kv, vv = (torch.randn(1, nv, h, d, device=device) for _ in range(3))
    out, lse = sparseplan.video_block_sparse_attention(qv.to(dtype), kv.to(dtype), vv.to(dtype),
                                                       v_offsets, v_cols, grid, tile, bs)
    token_mask = vt[:, tile_of][:, :, tile_of].to(device)
    ref, ref_lse = masked_reference(qv, kv, vv, token_mask)
    check(f"{device}: video block-sparse attention matches attention masked by tiles",
          rel_l2(out, ref) < 1e-2)
    check(f"{device}: video block-sparse LSE is in model order", rel_l2(lse, ref_lse) < 1e-3)
    # Tile-major: the same tokens reordered by tile (stable within a tile keeps (f, h, w)).
    rows = torch.sort(tile_of, stable=True).indices.to(device)
    out_tm, lse_tm = sparseplan.video_block_sparse_attention(
        qv[:, rows].to(dtype), kv[:, rows].to(dtype), vv[:, rows].to(dtype), v_offsets, v_cols,
        grid, tile, bs, tile_major=True)
    check(f"{device}: tile-major video attention matches attention masked by tiles",
          rel_l2(out_tm, ref[:, rows]) < 1e-2)
    check(f"{device}: tile-major LSE is in tile-major order",
          rel_l2(lse_tm, ref_lse[:, :, rows]) < 1e-3)
    tile_pairs = torch.stack([torch.randperm(nt) for _ in range(h)]).to(torch.int32)
    out_tp, _ = sparseplan.video_block_sparse_attention(
        qv[:, rows].to(dtype), kv[:, rows].to(dtype), vv[:, rows].to(dtype), v_offsets, v_cols,
        grid, tile, bs, tile_major=True, q_pair_order=tile_pairs.view(1, h, nt).to(device))
    check(f"{device}: tile-major video attention in a pair order matches",
          rel_l2(out_tp, ref[:, rows]) < 1e-2)
    for bad_tile, bad_grid, words in (((4, 4, 8), grid, "must fit one block"),
                                      (tile, (5, 6, 8), "tokens")):
        try:
            sparseplan.video_block_sparse_attention(qv.to(dtype), kv.to(dtype), vv.to(dtype),
                                                    v_offsets, v_cols, bad_grid, bad_tile, bs)
            check(f"{device}: video grid {bad_grid} tile {bad_tile} is rejected", False)
        except RuntimeError as e:
            check(f"{device}: the video error says why: {str(e).splitlines()[0]}", words in str(e))

    index = torch.randperm(n, device=device).to(torch.int32)
    moved = sparseplan.load().reorder_tokens(q, index)
    check(f"{device}: reorder_tokens gathers rows", bool(torch.equal(moved, q[:, index.long()])))

try:
    sparseplan.dense_attention(torch.randn(1, 8, 2, 64), torch.randn(1, 8, 3, 64),
                               torch.randn(1, 8, 2, 64))
    check("mismatched shapes are rejected", False)
except RuntimeError as e:
    check(f"the error names the argument: {e}", "k" in str(e))

finish("python ops")
