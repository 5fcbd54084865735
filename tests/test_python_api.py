"""The Python API over the C++ core (sparseplan._core): plans and their errors, compiled
layouts, plan attention against masked softmax attention, block mass.

Runs with PYTHONPATH=<build>/python (ctest) or the installed package."""
import json
import math
import os
import tempfile

import torch

import sparseplan
from script_checks import check, finish

# 1 layer, 2 heads of 32; grid 2x8x8 = 128 tokens; tile 2x4x4 = 32 tokens = one block of 32:
# 4 blocks, one per tile. Head 0 sees only its own tile, head 1 everything.
PLAN = {
    "format": "sparseplan/1",
    "model": {"id": "toy", "layers": 1, "heads": 2, "head_dim": 32},
    "grid": {"frames": 2, "height": 8, "width": 8},
    "text": {"position": "none", "tokens": 0},
    "block_size": 32,
    "tile": [2, 4, 4],
    "schedule": {"total_steps": 0, "warmup_steps": 1, "dense_steps": [], "reselect_steps": []},
    "layers": [{"heads": [
        {"rule": "window", "window": {"groups": [{"max_frame_distance": 0, "tiles": [1, 1]}]}},
        {"rule": "dense"},
    ]}],
}


def masked_attention(q, k, v, mask):
    """Softmax attention in float64 with a token mask [H, N, N]; q, k, v [1, N, H, D]."""
    s = torch.einsum("bnhd,bmhd->bhnm", q.double(), k.double()) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask.unsqueeze(0), float("-inf"))
    return torch.einsum("bhnm,bmhd->bnhd", torch.softmax(s, dim=-1), v.double())


plan = sparseplan.Plan.from_json(json.dumps(PLAN), "toy.json")
check("a plan loads from JSON with its model, grid and tile",
      (plan.model_id, plan.num_layers, plan.num_heads, plan.head_dim, plan.grid, plan.tile,
       plan.block_size) == ("toy", 1, 2, 32, (2, 8, 8), (2, 4, 4), 32))
check(f"the plan's repr says what it is: {plan!r}",
      repr(plan).startswith("Plan(model='toy', layers=1, heads=2, head_dim=32, grid=2x8x8")
      and "window: 1" in repr(plan) and "dense: 1" in repr(plan))
check("rule kinds per head", [plan.rule_kind(0, h) for h in range(2)] == ["window", "dense"])

bad = json.loads(json.dumps(PLAN))
bad["layers"][0]["heads"][0]["window"]["groups"][0]["tiles"] = [0, 1]
try:
    sparseplan.Plan.from_json(json.dumps(bad), "bad.json")
    check("a bad plan raises PlanError", False)
except sparseplan.PlanError as e:
    check(f"PlanError names the source and the JSON path: {e}",
          "bad.json" in str(e) and any("layers[0].heads[0].window.groups[0].tiles" in x
                                       for x in e.errors))
    check("PlanError is a ValueError", isinstance(e, ValueError))

with tempfile.TemporaryDirectory() as tmp:
    missing = os.path.join(tmp, "missing.json")
    try:
        sparseplan.load_plan(missing)
        check("a missing plan file raises", False)
    except RuntimeError as e:
        check(f"the error names the missing file: {e}", "missing.json" in str(e))
    path = os.path.join(tmp, "toy.json")
    with open(path, "w") as f:
        json.dump(PLAN, f)
    check("load_plan reads a file", sparseplan.load_plan(path).grid == (2, 8, 8))

check("check_model lists a head count mismatch naming both sides",
      any("2 heads" in p and "toy" in p and "3" in p
          for p in plan.check_model("toy", 1, 3, 32)))
check("check_model is empty for the plan's own model", plan.check_model("toy", 1, 2, 32) == [])

layouts = sparseplan.compile_layouts(plan, 0)
check(f"layouts of a layer: {layouts!r}",
      tuple(layouts.row_offsets.shape) == (2, 5) and layouts.num_blocks == 4
      and layouts.kinds == ["window", "dense"])
check("the own-tile window keeps one block per row, dense all four",
      layouts.densities == [0.25, 1.0] and layouts.col_indices.numel() == 4 + 16)
check("row offsets are global over the heads' col_indices",
      layouts.row_offsets[1, 0].item() == 4 and layouts.row_offsets[1, -1].item() == 20)
check("the token order is a permutation of the 128 tokens",
      sorted(layouts.token_of_slot.tolist()) == list(range(128)))
check("each head's pair order is a permutation of its query blocks",
      all(sorted(row) == [0, 1, 2, 3] for row in layouts.q_pair_order.tolist()))
check("the layouts' pair order is query_pair_order of their CSR",
      torch.equal(layouts.q_pair_order,
                  sparseplan.query_pair_order(layouts.row_offsets, layouts.col_indices,
                                              (2, 8, 8), (2, 4, 4), 32)))
# Tiles 0, 1 on the first row of tiles, 2, 3 on the second; 0 and 2 attend keys {0, 2}, 1 and 3
# keys {1, 3}: pairs along h walk one stage each, consecutive pairs two.
column_ro = torch.tensor([[0, 2, 4, 6, 8]], dtype=torch.int32)
column_ci = torch.tensor([0, 2, 1, 3, 0, 2, 1, 3], dtype=torch.int32)
order = sparseplan.query_pair_order(column_ro, column_ci, (2, 8, 8), (2, 4, 4), 32)[0].tolist()
check(f"blocks sharing their keys are paired ({order})",
      {frozenset(order[:2]), frozenset(order[2:])} == {frozenset({0, 2}), frozenset({1, 3})})
try:
    sparseplan.query_pair_order(column_ro[:, :4], column_ci, (2, 8, 8), (2, 4, 4), 32)
    check("row_offsets of another block count are refused", False)
except ValueError as e:
    check(f"the shape error names row_offsets: {e}", "row_offsets" in str(e) and "[heads, 5]" in str(e))
try:
    sparseplan.query_pair_order(column_ro, column_ci + 4, (2, 8, 8), (2, 4, 4), 32)
    check("a key block past the grid is refused", False)
except ValueError as e:
    check(f"the range error names the key block: {e}", "key block" in str(e))
try:
    sparseplan.query_pair_order(column_ro.long(), column_ci, (2, 8, 8), (2, 4, 4), 32)
    check("int64 row_offsets are refused", False)
except ValueError as e:
    check(f"the dtype error names row_offsets and int32: {e}",
          "row_offsets" in str(e) and "int32" in str(e))
try:
    sparseplan.query_pair_order(torch.tensor([[0, 4, 2, 6, 8]], dtype=torch.int32), column_ci,
                                (2, 8, 8), (2, 4, 4), 32)
    check("falling row_offsets are refused", False)
except ValueError as e:
    check(f"the offsets error names the head: {e}", "head 0" in str(e) and "rise" in str(e))
try:
    sparseplan.compile_layouts(plan, 0, grid=(2, 8, 12))
    check("another grid is refused", False)
except ValueError as e:
    check(f"the grid error names both grids: {e}", "2x8x12" in str(e) and "8" in str(e))

torch.manual_seed(0)
q, k, v = (torch.randn(1, 128, 2, 32) for _ in range(3))
attention = sparseplan.PlanAttention(plan)
out = attention(q, k, v, layer=0, step=1, grid=(2, 8, 8))
# Tile of every model token: the slot's block (one block per tile here).
tile_of_token = torch.empty(128, dtype=torch.long)
tile_of_token[layouts.token_of_slot] = torch.arange(128) // 32
same_tile = tile_of_token[:, None] == tile_of_token[None, :]
mask = torch.stack([same_tile, torch.ones(128, 128, dtype=torch.bool)])
ref = masked_attention(q, k, v, mask)
err = float((out.double() - ref).norm() / ref.norm())
check(f"plan attention is softmax attention within the layouts (rel. error {err:.2e})", err < 1e-5)
check("a warm-up step runs dense",
      attention.runs_dense(0, 0) and not attention.runs_dense(0, 1))
dense_out = attention(q, k, v, layer=0, step=0, grid=(2, 8, 8))
ref_dense = masked_attention(q, k, v, torch.ones(2, 128, 128, dtype=torch.bool))
check("the warm-up step matches dense attention",
      float((dense_out.double() - ref_dense).norm() / ref_dense.norm()) < 1e-5)
check(f"stats count the calls: {attention.stats}",
      attention.stats["sparse_calls"] == 1 and attention.stats["dense_calls"] == 1)
check(f"PlanAttention's repr has the plan and the stats: {attention!r}",
      "Plan(model='toy'" in repr(attention) and "1 sparse calls" in repr(attention))
try:
    q3, k3, v3 = (torch.randn(1, 128, 3, 32) for _ in range(3))
    attention(q3, k3, v3, layer=0, step=1, grid=(2, 8, 8))
    check("q with another head count is refused", False)
except ValueError as e:
    check(f"the head mismatch is named: {e}", "head" in str(e))

r = sparseplan.block_mass(q, k, v, grid=(2, 8, 8), tiles=[(2, 4, 4)], block_size=32)
mass = r.mass(0)
check(f"block mass has one matrix per head: {r!r}", tuple(mass.shape) == (1, 2, 4, 4))
check("block mass rows sum to one", bool(torch.allclose(mass.sum(-1), torch.ones(1, 2, 4), atol=1e-5)))
# Mass of query block i on key block j from the dense probabilities.
p = torch.softmax(torch.einsum("bnhd,bmhd->bhnm", q.double(), k.double()) / math.sqrt(32), -1)
onehot = torch.nn.functional.one_hot(tile_of_token, 4).double()
expected = torch.einsum("bhnm,mj,ni->bhij", p, onehot, onehot) / 32
check("block mass is the mean probability a query block puts on each key block",
      float((mass.double() - expected).abs().max()) < 1e-5)
check("block mass returns the dense output too",
      float((r.out.double() - ref_dense).norm() / ref_dense.norm()) < 1e-5)

finish("python api")
