"""Type stubs of sparseplan._core (python/core_module.cpp)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch

Triple = Tuple[int, int, int]
__version__: str

class PlanError(ValueError):
    errors: List[str]

class Plan:
    @staticmethod
    def load(path: str) -> "Plan": ...
    @staticmethod
    def from_json(text: str, source: str = "plan") -> "Plan": ...
    model_id: str
    num_layers: int
    num_heads: int
    head_dim: int
    grid: Triple
    tile: Triple
    block_size: int
    text_position: str
    text_tokens: int
    description: str
    def rule_kind(self, layer: int, head: int) -> str: ...
    def check_model(self, model_id: str, layers: int, heads: int, head_dim: int) -> List[str]: ...
    def check_grid(self, grid: Triple) -> List[str]: ...

class LayerLayouts:
    layer: int
    kinds: List[str]
    densities: List[float]
    num_blocks: int
    block_size: int
    row_offsets: torch.Tensor
    col_indices: torch.Tensor
    kv_block_valid: torch.Tensor
    token_of_slot: torch.Tensor
    q_pair_order: torch.Tensor

def compile_layouts(plan: Plan, layer: int, grid: Optional[Triple] = None,
                    device: str = "cpu") -> LayerLayouts: ...

def query_pair_order(row_offsets: torch.Tensor, col_indices: torch.Tensor, grid: Triple,
                     tile: Triple, block_size: int = 64) -> torch.Tensor: ...

class PlanAttention:
    def __init__(self, plan: Plan) -> None: ...
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, layer: int,
                 step: int, branch: int = 0, grid: Triple, timestep: float = 0.0) -> torch.Tensor: ...
    def runs_dense(self, layer: int, step: int, branch: int = 0) -> bool: ...
    def check_model(self, model_id: str, layers: int, heads: int, head_dim: int) -> None: ...
    plan: Plan
    stats: Dict[str, float]
    def online_layouts(self, layer: int, branch: int = 0) -> List[Tuple[List[int], List[int]]]: ...

class BlockMass:
    out: torch.Tensor
    lse: torch.Tensor
    tiles: List[Triple]
    def mass(self, tile_index: int = 0) -> torch.Tensor: ...
    def lse_stats(self, tile_index: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

def block_mass(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, grid: Triple,
               tiles: Sequence[Triple] = ..., block_size: int = 64, chunk_rows: int = 0,
               float64: bool = False) -> BlockMass: ...

class CaptureSession:
    def __init__(self, path: str, *, model_id: str, layers: int, heads: int, head_dim: int,
                 grid: Triple, tiles: Sequence[Triple], block_size: int, prompts: Sequence[str],
                 seeds: Sequence[int], steps: Sequence[int], timesteps: Sequence[float],
                 capture_layers: Sequence[int], branch: int, model_config_json: str = "{}",
                 sampler_json: str = "{}", full_lse: bool = False, chunk_rows: int = 0) -> None: ...
    def set_prompt(self, prompt: int) -> None: ...
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, layer: int,
                 step: int, branch: int = 0, grid: Triple, timestep: float = 0.0) -> torch.Tensor: ...
    def captures(self, layer: int, step: int, branch: int = 0) -> bool: ...
    captured_calls: int
    calls_per_prompt: int
    finished: bool
    def finish(self) -> None: ...
