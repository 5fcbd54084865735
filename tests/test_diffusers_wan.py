"""sparseplan.diffusers on wan-mini loaded into diffusers' WanTransformer3DModel, against the
C++ runner of the `sparseplan` command:
- the diffusers model's velocity matches the fixture's float32 known answer;
- apply_plan installs processors on attn1 only and remove() restores them; mismatched plans and
  unsupported models are refused naming both sides;
- capture() from a diffusers sampling loop gives the C++ capture's block mass, and a file that
  `sparseplan search` turns into a plan;
- a sampling loop with apply_plan gives `sparseplan generate --plan`'s video (PSNR >= 40 dB)
  with the same plan statistics, call for call in the runner's order.
The runner runs with `--sinusoid float32`, diffusers' timestep sinusoid: with it both compute
the same operations, so capture and video agree bit for bit on one machine.

Usage: test_diffusers_wan.py SPARSEPLAN_BINARY WAN_MINI_DIR"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

import sparseplan
import sparseplan.diffusers as spd
from script_checks import check, finish

binary, wan_mini = sys.argv[1], sys.argv[2]
if not os.path.isdir(wan_mini):
    print(f"SKIP: wan-mini fixture not found at {wan_mini}")
    sys.exit(77)
torch.set_grad_enabled(False)

FRAMES, HEIGHT, WIDTH = 8, 32, 32          # token grid 8x8x8: 8 blocks of 64 in 4x4x4 tiles
PROMPT = "bg-checker bgcolor-black pan-up green square move-down large"
SHIFT, GUIDANCE, SEED = 3.0, 5.0, 3


def run(*args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sparseplan {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def flow_sigmas(steps, shift):
    s = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return (shift * s / (1 + (shift - 1) * s)).tolist()


def sample(model, steps, seed=SEED, prompt=PROMPT):
    """The C++ runner's sampler (model/flow_sampler.h) around the diffusers transformer."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, FRAMES, HEIGHT, WIDTH, generator=gen)
    cond = spd.toy_text_context(wan_mini, prompt)
    uncond = torch.zeros_like(cond)
    sig = flow_sigmas(steps, SHIFT)
    for i in range(steps):
        t = torch.full([1], 1000.0 * sig[i], dtype=torch.float32)
        v = model(hidden_states=x, timestep=t, encoder_hidden_states=cond, return_dict=False)[0]
        vu = model(hidden_states=x, timestep=t, encoder_hidden_states=uncond, return_dict=False)[0]
        x = x + (sig[i + 1] - sig[i]) * (vu + GUIDANCE * (v - vu))
    return x[0]


def runner_attention(q, k, v):
    """Dense float32 attention on [B, N, H, D] with the operations of the C++ runner's CPU path
    (model/attention_backend.cpp), so that equal inputs give bit-equal outputs."""
    s = torch.matmul(q.float().permute(0, 2, 1, 3), k.float().permute(0, 2, 3, 1))
    s.mul_(1.0 / math.sqrt(q.shape[-1]))
    out = torch.matmul(torch.softmax(s, -1), v.float().permute(0, 2, 1, 3))
    return out.permute(0, 2, 1, 3).contiguous()


class RoundedCrossAttention:
    """diffusers' Wan cross-attention with q, k, v rounded to bfloat16 before a float32 softmax,
    the function the C++ runner computes (it rounds them as Wan2.1's flash attention does); the
    comparisons below give diffusers the same, so that both sides compute one function."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        q = attn.norm_q(attn.to_q(hidden_states))
        k = attn.norm_k(attn.to_k(encoder_hidden_states))
        v = attn.to_v(encoder_hidden_states)
        q, k, v = (x.unflatten(2, (attn.heads, -1)).to(torch.bfloat16).float() for x in (q, k, v))
        out = runner_attention(q, k, v).flatten(2, 3)
        return attn.to_out[1](attn.to_out[0](out))



def psnr(a, b):
    mse = float(((a.clamp(-1, 1) - b.clamp(-1, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


model = spd.load_wan_checkpoint(wan_mini)
ref = load_file(os.path.join(wan_mini, "reference.safetensors"))
v = model(hidden_states=ref["x"], timestep=ref["t"], encoder_hidden_states=ref["context"],
          return_dict=False)[0]
err = float((v - ref["velocity_fp32"]).norm() / ref["velocity_fp32"].norm())
check(f"wan-mini in diffusers matches velocity_fp32 (rel. L2 {err:.1e})", err < 2e-3)

for block in model.blocks:
    block.attn2.set_processor(RoundedCrossAttention())

with tempfile.TemporaryDirectory() as tmp:
    # Capture from diffusers and from the C++ runner: same prompt, seed, steps.
    steps = 4
    capture_steps = [0, 1, 3]
    h5_py = os.path.join(tmp, "diffusers.h5")
    originals = [b.attn1.processor for b in model.blocks]
    cross = [b.attn2.processor for b in model.blocks]
    with spd.capture(model, h5_py, prompts=[PROMPT], seeds=[SEED], steps=capture_steps,
                     model_id="wan-mini",
                     sampler={"sampler": "flow_euler", "steps": steps, "shift": SHIFT,
                              "guidance": GUIDANCE}) as cap:
        check("capture installs a processor on every attn1",
              all(isinstance(b.attn1.processor, spd.SelfAttentionProcessor) for b in model.blocks))
        check("capture leaves cross-attention alone",
              all(b.attn2.processor is p for b, p in zip(model.blocks, cross)))
        sample(model, steps)
    check(f"capture writes the file: {cap!r}", os.path.isfile(h5_py) and cap.session.finished)
    check("capture restores the processors",
          all(b.attn1.processor is p for b, p in zip(model.blocks, originals)))
    h5_cpp = os.path.join(tmp, "cpp.h5")
    run("capture", "--model", wan_mini, "--prompt", PROMPT, "--seed", str(SEED),
        "--frames", str(FRAMES), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--steps", str(steps), "--capture-steps", ",".join(map(str, capture_steps)),
        "--tiles", "4x4x4", "--sinusoid", "float32", "--out", h5_cpp)
    import h5py
    import numpy as np
    with h5py.File(h5_py) as a, h5py.File(h5_cpp) as b:
        check("the capture is complete and in the capture format",
              a.attrs["complete"] == 1 and a.attrs["format"] == b.attrs["format"])
        for name in ("layers", "heads", "head_dim", "block_size", "grid", "num_steps", "tiles"):
            check(f"capture attribute {name} equals the C++ capture's",
                  np.array_equal(a.attrs[name], b.attrs[name]))
        check("captured steps and timesteps equal the C++ capture's",
              np.array_equal(a["steps"][()], b["steps"][()])
              and np.allclose(a["timesteps"][()], b["timesteps"][()], rtol=1e-6))
        # [prompt, step, layer, head, qb, kb]. The runner with diffusers' float32 sinusoid
        # computes what diffusers computes, operation for operation, at every captured step.
        ma, mb = a["tiles/4x4x4/block_mass"][()], b["tiles/4x4x4/block_mass"][()]
        diff = np.abs(ma - mb).max(axis=(0, 2, 3, 4, 5))
        check(f"block mass at every captured step equals the C++ capture's within 1e-4 "
              f"(max diff per step {', '.join(f'{d:.1e}' for d in diff)})", diff.max() <= 1e-4)
        la, lb = a["tiles/4x4x4/lse_mean"][()], b["tiles/4x4x4/lse_mean"][()]
        diff = float(np.abs(la - lb).max())
        check(f"LSE means agree within 1e-4 (max diff {diff:.1e})", diff <= 1e-4)
    plan_path = os.path.join(tmp, "plan.json")
    run("search", h5_py, "--recall", "0.9", "--out", plan_path, "--quiet")
    plan = sparseplan.load_plan(plan_path)
    check(f"sparseplan search accepts the diffusers capture: {plan!r}",
          plan.grid == (FRAMES, HEIGHT // 4, WIDTH // 4) and plan.model_id == "wan-mini")

    # Mismatches are named.
    other = json.load(open(plan_path))
    other["model"]["heads"] = 4
    other["layers"] = [{"heads": l["heads"] + [{"rule": "dense"}]} for l in other["layers"]]
    try:
        spd.apply_plan(model, sparseplan.Plan.from_json(json.dumps(other)))
        check("a plan for 4 heads is refused", False)
    except ValueError as e:
        check(f"the head mismatch names both sides: {e}", "4 heads" in str(e) and "3" in str(e))
    try:
        spd.apply_plan(torch.nn.Linear(2, 2), plan)
        check("an unsupported model is refused", False)
    except TypeError as e:
        check(f"the unsupported model is named: {e}",
              "WanTransformer3DModel" in str(e) and "Linear" in str(e))
    with spd.apply_plan(model, plan) as handle:
        try:
            model(hidden_states=torch.zeros(1, 3, 4, 32, 32), timestep=torch.tensor([999.0]),
                  encoder_hidden_states=spd.toy_text_context(wan_mini, PROMPT))
            check("latents of another grid are refused", False)
        except ValueError as e:
            check(f"the grid mismatch names both grids: {e}",
                  "[8, 8, 8]" in str(e) and "[4, 8, 8]" in str(e))

    # The plan from diffusers and from the C++ runner, 30 guided steps.
    steps = 30
    with spd.apply_plan(model, plan) as handle:
        video_py = sample(model, steps)
    check("remove() restores the processors",
          all(b.attn1.processor is p for b, p in zip(model.blocks, originals)))
    out = os.path.join(tmp, "gen")
    printed = run("generate", "--model", wan_mini, "--prompt", PROMPT, "--seed", str(SEED),
                  "--frames", str(FRAMES), "--height", str(HEIGHT), "--width", str(WIDTH),
                  "--steps", str(steps), "--plan", plan_path, "--sinusoid", "float32",
                  "--out", out)
    video_cpp = load_file(os.path.join(out, "video.safetensors"))["video"]
    quality = psnr(video_py, video_cpp)
    # Bit-equal on one machine (both run the same torch); 40 dB is what bf16 rounding flips
    # would leave after 30 guided steps.
    check(f"apply_plan's video matches sparseplan generate --plan (PSNR {quality:.1f} dB)",
          quality >= 40.0)
    expected_calls = [(s, b, l) for s in range(steps) for b in (0, 1)
                      for l in range(len(model.blocks))]
    check("the plan ran for every self-attention call in the runner's order",
          handle.calls == expected_calls)
    stats_line = next(line for line in printed.splitlines() if line.startswith("plan:"))
    check(f"the plan statistics equal the C++ runner's: {stats_line}",
          stats_line in repr(handle.attention))

finish("diffusers wan")
