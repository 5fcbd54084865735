#!/usr/bin/env python3
"""Capture files open in h5py with the layout docs/capture-format.md describes.

Makes two small wan-mini captures with the CLI, merges them, and checks every documented
attribute and dataset from Python: shapes, dtypes, rows of block mass summing to 1, LSE
statistics ordered min <= mean <= max, and the token order.

usage: test_capture_h5py.py SPARSEPLAN_BINARY WAN_MINI_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

PROMPTS = [
    "bg-solid bgcolor-black pan-still red circle move-right large",
    "bg-checker bgcolor-blue pan-left yellow square move-down small",
]


def capture(binary, model, out, prompt, seed):
    cmd = [binary, "capture", "--model", model, "--prompt", prompt, "--seed", str(seed),
           "--frames", "4", "--height", "32", "--width", "32", "--steps", "3",
           "--capture-steps", "0,2", "--tiles", "4x4x4,2x4x8,1x8x8", "--full-lse",
           "--out", out]
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def text(value):
    """A string attribute: fixed-length strings (format 2) come back from h5py as bytes."""
    assert isinstance(value, bytes), f"expected a fixed-length string, got {type(value)}"
    return value.decode()


def check_capture(path, num_prompts):
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert text(a["format"]) == "sparseplan-capture/2", a["format"]
        assert int(a["complete"]) == 1
        assert text(a["model_id"]) == "wan-mini"
        L, H, D = int(a["layers"]), int(a["heads"]), int(a["head_dim"])
        assert (L, H, D) == (8, 3, 128), (L, H, D)
        assert list(a["grid"]) == [4, 8, 8]
        assert text(a["text_position"]) == "none" and int(a["text_tokens"]) == 0
        assert int(a["block_size"]) == 64
        assert int(a["branch"]) == 0
        assert json.loads(text(a["model_config"]))["num_heads"] == 3
        assert json.loads(text(a["sampler"]))["steps"] == 3
        assert text(a["tool_version"]).startswith("sparseplan ")
        assert np.array(a["tiles"]).tolist() == [[4, 4, 4], [2, 4, 8], [1, 8, 8]]

        P = int(a["num_prompts"])
        assert P == num_prompts
        assert f["prompts"].shape == (P,)
        assert h5py.check_string_dtype(f["prompts"].dtype).length is not None  # fixed length
        assert [s.decode() for s in f["prompts"][()]] == PROMPTS[:P]
        assert f["seeds"][()].tolist() == list(range(5, 5 + P))
        assert f["steps"][()].tolist() == [0, 2]
        assert f["captured_layers"][()].tolist() == list(range(L))
        ts = f["timesteps"][()]
        assert ts.dtype == np.float64 and ts.shape == (2,)
        assert abs(ts[0] - 1000.0) < 1e-6 and 0 < ts[1] < ts[0]
        S = 2

        for name in ("4x4x4", "2x4x8", "1x8x8"):
            g = f["tiles"][name]
            nb = int(g.attrs["num_blocks"])
            valid = g["block_valid"][()]
            assert valid.shape == (nb,) and valid.sum() == 4 * 8 * 8
            order = g["token_of_slot"][()]
            assert order.shape == (nb * 64,)
            assert sorted(order[order >= 0].tolist()) == list(range(256))
            mass = g["block_mass"]
            assert mass.dtype == np.float32
            assert mass.shape == (P, S, L, H, nb, nb), mass.shape
            assert mass.chunks == (1, 1, 1, 1, nb, nb)
            m = mass[()]
            assert np.isfinite(m).all()
            rows = m.sum(axis=-1)
            want = (valid > 0).astype(np.float64)
            assert np.abs(rows - want).max() < 1e-4, np.abs(rows - want).max()
            lo, mean, hi = g["lse_min"][()], g["lse_mean"][()], g["lse_max"][()]
            assert lo.shape == mean.shape == hi.shape == (P, S, L, H, nb)
            ok = valid > 0
            assert (lo[..., ok] <= mean[..., ok] + 1e-5).all()
            assert (mean[..., ok] <= hi[..., ok] + 1e-5).all()

        lse = f["lse"][()]
        assert lse.shape == (P, S, L, H, 256)
        g = f["tiles"]["4x4x4"]
        order = g["token_of_slot"][()]
        # Block 0's mean LSE from the full LSE, through the token order.
        tokens = order[:64][order[:64] >= 0]
        assert np.allclose(lse[..., tokens].mean(-1), g["lse_mean"][..., 0], atol=1e-4)


def main():
    binary, model = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        one = os.path.join(tmp, "one.h5")
        two = os.path.join(tmp, "two.h5")
        merged = os.path.join(tmp, "merged.h5")
        capture(binary, model, one, PROMPTS[0], 5)
        capture(binary, model, two, PROMPTS[1], 6)
        check_capture(one, 1)
        subprocess.run([binary, "capture", "--merge", one, two, "--out", merged], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check_capture(merged, 2)
        with h5py.File(one, "r") as a, h5py.File(merged, "r") as m:
            assert np.array_equal(a["tiles/2x4x8/block_mass"][0], m["tiles/2x4x8/block_mass"][0])
        leftovers = [n for n in os.listdir(tmp) if ".tmp-" in n]
        assert not leftovers, leftovers
    print("test_capture_h5py: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
