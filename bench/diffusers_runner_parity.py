"""wan-mini sampled in diffusers' WanTransformer3DModel and by `sparseplan generate` from the same
noise, dense, and how far apart the two videos end (bench/RESULTS.md, "diffusers and the runner,
operation for operation"). diffusers runs with the operations tests/test_diffusers_wan.py gives
it (cross-attention and dense self-attention through the runner's float32 ops).

Usage: PYTHONPATH=build/python python bench/diffusers_runner_parity.py STEPS float32|float64
       [SPARSEPLAN_BINARY] [WAN_MINI_DIR]"""
import math
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
steps, sinusoid = int(sys.argv[1]), sys.argv[2]
binary = sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "build/cli/sparseplan")
wan_mini = sys.argv[4] if len(sys.argv) > 4 else os.path.join(root, "../shared/fixtures/wan-mini")
torch.set_grad_enabled(False)

# The test's sampler, prompt, grid and processors, so both measure one setting.
import sparseplan.diffusers as spd  # noqa: E402
source = open(os.path.join(root, "tests/test_diffusers_wan.py")).read()
exec(source[source.index("FRAMES, HEIGHT"):source.index("def psnr")])

model = spd.load_wan_checkpoint(wan_mini)
for i, block in enumerate(model.blocks):
    block.attn2.set_processor(RoundedCrossAttention())  # noqa: F821 (from the test)
    block.attn1.set_processor(spd.SelfAttentionProcessor(
        i, lambda q, k, v, layer: runner_attention(q, k, v), torch.bfloat16))  # noqa: F821
video_py = sample(model, steps)  # noqa: F821
with tempfile.TemporaryDirectory() as out:
    subprocess.run([binary, "generate", "--model", wan_mini, "--prompt", PROMPT,  # noqa: F821
                    "--seed", str(SEED), "--frames", str(FRAMES), "--height", str(HEIGHT),  # noqa: F821
                    "--width", str(WIDTH), "--steps", str(steps), "--sinusoid", sinusoid,  # noqa: F821
                    "--out", out], check=True, capture_output=True)
    video_cpp = load_file(os.path.join(out, "video.safetensors"))["video"]
mse = float(((video_py.clamp(-1, 1) - video_cpp.clamp(-1, 1)) ** 2).mean())
print(f"steps {steps}, --sinusoid {sinusoid}: max abs difference "
      f"{float((video_py - video_cpp).abs().max()):.3g}, PSNR "
      f"{math.inf if mse == 0 else 10 * math.log10(4 / mse):.1f} dB")
