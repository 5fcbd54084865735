"""sparseplan in diffusers pipelines: apply a plan to, or capture attention from, a
``WanTransformer3DModel``.

Both install an attention processor on the self-attention (``attn1``) of every block through
diffusers' own ``set_processor`` (cross-attention keeps its processor; no library class is
patched) and a forward pre-hook on the transformer that tracks where a call is in sampling:

- the **step** from the timestep sequence: a smaller timestep than the previous call's starts
  the next step, a larger one starts a new sampling run (step 0), an equal one is the next
  guidance branch of the same step;
- the **branch**: 0 for the first call of a step (conditional, as WanPipeline calls it first),
  1 for the second (unconditional);
- the **token grid** from the latent shape [B, C, F, H, W] and the patch size.

The processors compute q, k, v exactly as diffusers' ``WanAttnProcessor`` (projections, RMS
norms, rotary embedding), round them to bfloat16 as Wan2.1's flash attention and the C++
runner do, and hand them to the C++ core in model token order; it reorders into the plan's tile
order, runs the layouts and reorders back.

    import sparseplan.diffusers as spd
    with spd.apply_plan(pipe.transformer, "plan.json"):
        video = pipe(prompt, num_inference_steps=30).frames

    with spd.capture(pipe.transformer, "run.h5", prompts=[prompt], steps=[0, 10, 20]):
        pipe(prompt, num_inference_steps=30)
    # then: sparseplan search run.h5 --recall 0.9 --out plan.json
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional, Sequence, Tuple, Union

import torch

from . import CaptureSession, Plan, PlanAttention

Grid = Tuple[int, int, int]


def _wan_class():
    from diffusers import WanTransformer3DModel
    return WanTransformer3DModel


def _check_supported(transformer) -> None:
    cls = _wan_class()
    if not isinstance(transformer, cls):
        raise TypeError(f"sparseplan.diffusers supports {cls.__name__} (Wan2.1); got "
                        f"{type(transformer).__name__}")
    for i, block in enumerate(transformer.blocks):
        if getattr(block.attn1, "add_k_proj", None) is not None:
            raise TypeError(f"block {i}: image-conditioned self-attention (Wan2.1 I2V) is not "
                            "supported")


def _model_shape(transformer) -> Tuple[int, int, int]:
    cfg = transformer.config
    return len(transformer.blocks), int(cfg.num_attention_heads), int(cfg.attention_head_dim)


def _default_model_id(transformer) -> str:
    name = getattr(transformer.config, "_name_or_path", "") or ""
    return os.path.basename(os.path.normpath(name)) if name else type(transformer).__name__


class SamplingTracker:
    """Forward pre-hook state: the step, branch, grid and timestep of the current call."""

    def __init__(self, patch_size: Sequence[int], on_new_run: Optional[Callable[[int], None]] = None):
        self.patch_size = tuple(int(p) for p in patch_size)
        self.step = -1
        self.branch = 0
        self.run = -1
        self.grid: Optional[Grid] = None
        self.latent_shape: Optional[Tuple[int, ...]] = None
        self.timestep = 0.0
        self._last_timestep: Optional[float] = None
        self._on_new_run = on_new_run

    def reset(self) -> None:
        """Forgets the sampling run in progress: the next call is step 0 of a new run."""
        self._last_timestep = None

    def __call__(self, module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if hidden is None or timestep is None:
            raise ValueError("sparseplan: the transformer was called without hidden_states or "
                             "timestep")
        t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        if self._last_timestep is None or t > self._last_timestep:
            self.run += 1
            self.step, self.branch = 0, 0
            if self._on_new_run:
                self._on_new_run(self.run)
        elif t < self._last_timestep:
            self.step += 1
            self.branch = 0
        else:
            self.branch += 1
        self._last_timestep = t
        self.timestep = t
        shape = tuple(hidden.shape)
        pf, ph, pw = self.patch_size
        if len(shape) != 5 or shape[2] % pf or shape[3] % ph or shape[4] % pw:
            raise ValueError(f"sparseplan: latents of shape {list(shape)} do not split into "
                             f"patches of {list(self.patch_size)}")
        self.latent_shape = shape
        self.grid = (shape[2] // pf, shape[3] // ph, shape[4] // pw)
        return None


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # diffusers' WanAttnProcessor rotation: interleaved pairs, cos/sin repeated per pair.
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out.type_as(x)


class SelfAttentionProcessor:
    """Wan2.1 self-attention with the attention itself delegated to `attend(q, k, v, layer)`
    (q, k, v [B, N, H, D] in model token order)."""

    def __init__(self, layer: int, attend: Callable, round_to: Optional[torch.dtype]):
        self.layer = layer
        self.attend = attend
        self.round_to = round_to

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"sparseplan: the processor of layer {self.layer} serves "
                             "self-attention only (attn1), without a mask")
        if attn.fused_projections:
            q, k, v = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (x.unflatten(2, (attn.heads, -1)) for x in (q, k, v))
        if rotary_emb is not None:
            q, k = _rotary(q, *rotary_emb), _rotary(k, *rotary_emb)
        dtype = q.dtype
        if self.round_to is not None:
            q, k, v = (x.to(self.round_to).float() for x in (q, k, v))
        out = self.attend(q, k, v, self.layer)
        out = out.to(dtype).flatten(2, 3)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


class _Installed:
    """Processors on every block's attn1 and the pre-hook; remove() puts everything back."""

    def __init__(self, transformer, attend: Callable, round_to, on_new_run=None):
        _check_supported(transformer)
        self.transformer = transformer
        self.tracker = SamplingTracker(transformer.config.patch_size, on_new_run)
        self._originals = [block.attn1.processor for block in transformer.blocks]
        for i, block in enumerate(transformer.blocks):
            block.attn1.set_processor(SelfAttentionProcessor(i, attend, round_to))
        self._hook = transformer.register_forward_pre_hook(self.tracker, with_kwargs=True)
        self._removed = False

    def remove(self) -> None:
        if self._removed:
            return
        self._hook.remove()
        for block, original in zip(self.transformer.blocks, self._originals):
            block.attn1.set_processor(original)
        self._removed = True

    @property
    def step(self) -> int:
        return self.tracker.step

    @property
    def branch(self) -> int:
        return self.tracker.branch

    def reset(self) -> None:
        """The next transformer call starts a new sampling run (step 0)."""
        self.tracker.reset()


class PlanHandle(_Installed):
    """Returned by apply_plan: `remove()` (or leaving the `with` block) restores the original
    processors. `attention` is the PlanAttention running the plan (its `stats` count dense and
    sparse calls); `calls` lists (step, branch, layer) of every self-attention call."""

    def __init__(self, transformer, plan: Plan, round_to):
        self.plan = plan
        self.attention = PlanAttention(plan)
        self.calls = []
        super().__init__(transformer, self._attend, round_to)

    def _attend(self, q, k, v, layer):
        tr = self.tracker
        if tr.grid != self.plan.grid:
            raise ValueError(f"sparseplan: the plan is for the token grid {list(self.plan.grid)}; "
                             f"the latents {list(tr.latent_shape)} with patch size "
                             f"{list(tr.patch_size)} give {list(tr.grid)}")
        self.calls.append((tr.step, tr.branch, layer))
        return self.attention(q, k, v, layer=layer, step=tr.step, branch=tr.branch,
                              grid=tr.grid, timestep=tr.timestep)

    @property
    def stats(self) -> dict:
        return self.attention.stats

    def __enter__(self) -> "PlanHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self._removed else f"step {self.step}, branch {self.branch}"
        return f"PlanHandle({self.plan!r}, {len(self.calls)} calls, {state})"


def apply_plan(transformer, plan: Union[Plan, str, os.PathLike], *, model_id: Optional[str] = None,
               round_qkv_to: Optional[torch.dtype] = torch.bfloat16) -> PlanHandle:
    """Runs `plan` in every self-attention of a diffusers WanTransformer3DModel.

    `plan` is a Plan or a plan file. Raises TypeError for a model this does not support and
    ValueError naming both sides when the plan's layers, heads or head_dim differ from the
    model's (the grid is checked on the first call, against the latents' shape).
    `round_qkv_to`: q, k, v are rounded to this dtype before attention (None: not rounded).
    Returns a PlanHandle (also a context manager) whose remove() restores the processors."""
    if not isinstance(plan, Plan):
        plan = Plan.load(os.fspath(plan))
    _check_supported(transformer)
    layers, heads, head_dim = _model_shape(transformer)
    model_id = model_id or _default_model_id(transformer)
    problems = plan.check_model(model_id, layers, heads, head_dim)
    if problems:
        raise ValueError(f"plan for model '{plan.model_id}' ({plan.num_layers} layers, "
                         f"{plan.num_heads} heads, head_dim {plan.head_dim}) does not fit "
                         f"{type(transformer).__name__} '{model_id}' ({layers} layers, {heads} "
                         f"heads, head_dim {head_dim}): " + "; ".join(problems))
    return PlanHandle(transformer, plan, round_qkv_to)


class CaptureHandle(_Installed):
    """Returned by capture: every sampling run with the transformer records one prompt. Leaving
    the `with` block without an exception (or finish()) checks that every captured step, layer
    and prompt was written and puts the file in place; an exception, or remove() before
    finish(), leaves no file."""

    def __init__(self, transformer, path, prompts, seeds, steps, layers, branch, tiles,
                 block_size, model_id, sampler, full_lse, chunk_rows, round_to):
        self.path = os.fspath(path)
        self.prompts = list(prompts)
        self._options = dict(
            model_id=model_id, tiles=[tuple(t) for t in tiles], block_size=block_size,
            prompts=self.prompts, seeds=list(seeds), steps=list(steps),
            timesteps=[], capture_layers=list(layers), branch=branch,
            model_config_json=json.dumps(_config_json(transformer)),
            sampler_json=json.dumps(sampler), full_lse=full_lse, chunk_rows=chunk_rows)
        self._shape = _model_shape(transformer)
        self.session: Optional[CaptureSession] = None
        super().__init__(transformer, self._attend, round_to, self._new_run)

    def _new_run(self, run: int) -> None:
        if run >= len(self.prompts):
            raise ValueError(f"sparseplan capture: sampling run {run + 1} but only "
                             f"{len(self.prompts)} prompts were given")
        if self.session is not None:
            self.session.set_prompt(run)

    def _attend(self, q, k, v, layer):
        tr = self.tracker
        if self.session is None:
            layers, heads, head_dim = self._shape
            self.session = CaptureSession(self.path, layers=layers, heads=heads,
                                          head_dim=head_dim, grid=tr.grid, **self._options)
            self.session.set_prompt(tr.run)
        return self.session(q, k, v, layer=layer, step=tr.step, branch=tr.branch, grid=tr.grid,
                            timestep=tr.timestep)

    def finish(self) -> str:
        """Checks completeness, writes the file and restores the processors; returns the path."""
        self.remove()
        if self.session is None:
            raise RuntimeError(f"sparseplan capture {self.path}: the transformer never ran")
        self.session.finish()
        return self.path

    def __enter__(self) -> "CaptureHandle":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.remove()
            self.session = None  # the unfinished writer removes its temporary file

    def __repr__(self) -> str:
        return f"CaptureHandle({self.path!r}, {self.session!r})"


def _config_json(transformer) -> dict:
    cfg = dict(transformer.config)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def capture(transformer, path: Union[str, os.PathLike], *, prompts: Sequence[str],
            steps: Sequence[int], seeds: Optional[Sequence[int]] = None,
            layers: Optional[Sequence[int]] = None, branch: str = "cond",
            tiles: Sequence[Tuple[int, int, int]] = ((4, 4, 4),), block_size: int = 64,
            model_id: Optional[str] = None, sampler: Optional[dict] = None,
            full_lse: bool = False, chunk_rows: int = 0,
            round_qkv_to: Optional[torch.dtype] = torch.bfloat16) -> CaptureHandle:
    """Records block attention mass and LSE statistics of a WanTransformer3DModel's
    self-attention into a capture file (docs/capture-format.md) that `sparseplan analyze`,
    `search` and `compare` read. Attention runs dense meanwhile.

    Each sampling run records the next of `prompts` (text kept in the file; `seeds` default
    0, 1, ...); `steps` are the captured step numbers, `layers` the captured layers (default
    all), `branch` 'cond' or 'uncond'. The grid is taken from the first call's latents."""
    if branch not in ("cond", "uncond"):
        raise ValueError(f"branch must be 'cond' or 'uncond', not {branch!r}")
    _check_supported(transformer)
    n_layers = _model_shape(transformer)[0]
    seeds = list(range(len(prompts))) if seeds is None else list(seeds)
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    return CaptureHandle(
        transformer, path, prompts, seeds, steps,
        list(range(n_layers)) if layers is None else layers, 0 if branch == "cond" else 1,
        tiles, block_size, model_id or _default_model_id(transformer),
        sampler or {"sampler": "diffusers"}, full_lse, chunk_rows, round_qkv_to)


def load_wan_checkpoint(directory: Union[str, os.PathLike],
                        torch_dtype: torch.dtype = torch.float32):
    """Loads a checkpoint in the original Wan2.1 layout (config.json of `WanModel` and its
    safetensors, single or sharded with an index) into diffusers' WanTransformer3DModel, mapping
    the keys with diffusers' own convert_wan_transformer_to_diffusers. For wan-mini and for
    Wan2.1 checkpoints that were never converted to the diffusers layout."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import load_file

    directory = os.fspath(directory)
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    index = [n for n in os.listdir(directory) if n.endswith(".safetensors.index.json")]
    if index:
        with open(os.path.join(directory, index[0])) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = sorted(n for n in os.listdir(directory)
                        if n.endswith(".safetensors") and n.startswith("diffusion_pytorch_model"))
    if not shards:
        raise FileNotFoundError(f"{directory}: no diffusion_pytorch_model*.safetensors")
    state = {}
    for shard in shards:
        state.update(load_file(os.path.join(directory, shard)))
    state = convert_wan_transformer_to_diffusers(state)
    model = _wan_class()(
        patch_size=tuple(cfg["patch_size"]), num_attention_heads=cfg["num_heads"],
        attention_head_dim=cfg["dim"] // cfg["num_heads"], in_channels=cfg["in_dim"],
        out_channels=cfg["out_dim"], text_dim=cfg["text_dim"], freq_dim=cfg["freq_dim"],
        ffn_dim=cfg["ffn_dim"], num_layers=cfg["num_layers"],
        cross_attn_norm=cfg["cross_attn_norm"],
        qk_norm="rms_norm_across_heads" if cfg["qk_norm"] else None, eps=cfg["eps"])
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.register_to_config(_name_or_path=os.path.abspath(directory))
    if torch_dtype != torch.float32:
        model = model.to(torch_dtype)
    return model.eval()


def toy_text_context(directory: Union[str, os.PathLike], prompt: str) -> torch.Tensor:
    """The text embeddings [1, text_len, text_dim] of a checkpoint that ships the toy text
    encoder text_encoder.safetensors (wan-mini): one embedding row per word, zero rows after
    the last, as `sparseplan generate --prompt` encodes it."""
    from safetensors import safe_open

    directory = os.fspath(directory)
    with open(os.path.join(directory, "config.json")) as f:
        text_len = json.load(f)["text_len"]
    path = os.path.join(directory, "text_encoder.safetensors")
    with safe_open(path, "pt") as f:
        vocab = json.loads(f.metadata()["vocab"])
        table = f.get_tensor("embedding").float()
    ids = {w: i for i, w in enumerate(vocab) if i > 0}
    words = prompt.split()
    unknown = [w for w in words if w not in ids]
    if unknown:
        raise ValueError(f"{path}: unknown words {unknown}")
    if len(words) > text_len:
        raise ValueError(f"{path}: {len(words)} words, at most {text_len}")
    context = torch.zeros(1, text_len, table.shape[1])
    for i, w in enumerate(words):
        context[0, i] = table[ids[w]]
    return context
