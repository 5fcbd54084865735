#!/usr/bin/env python3
"""The official Wan2.1 WanModel (t2v) math and the wan-mini sampler in PyTorch, float32 on the
CPU with q/k/v rounded to bf16 before attention: an independent check of the C++ runner
(model/wan_model.cpp, model/flow_sampler.cpp) against wan-mini's reference.safetensors.

It exists because the 4-step guided sample cannot be matched to 2e-3 by any implementation
that is not bit-identical with the one that made the reference (see the trap in
DEVELOPERS.md): rounding q/k/v to bf16 turns float32-ulp differences into ~2e-4 on a forward
and ~1.5e-2 on the sample. `--draws N` measures that spread directly: it reruns this code with
its inputs perturbed by a relative 1e-7 and estimates how far the reference sits from the
ensemble mean beyond the spread (a systematic difference, such as a wrong rounding place,
shows up there; chaos does not).

Needs torch and numpy (Debian: python3-torch); reads safetensors without the safetensors
package. Usage: scripts/wan_reference.py [--fixture DIR] [--draws N] [--no-sample]
"""
import argparse
import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, 'rb') as f:
        size = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        begin, end = info['data_offsets']
        raw = data[begin:end]
        if info['dtype'] == 'BF16':  # bf16 is the upper half of a float32
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, {'F32': np.float32, 'I64': np.int64}[info['dtype']])
        tensors[name] = torch.from_numpy(array.copy()).reshape(info['shape'])
    return tensors


def bf16(t):
    return t.to(torch.bfloat16).float()


class WanMini:
    def __init__(self, fixture):
        index = json.loads((fixture / 'diffusion_pytorch_model.safetensors.index.json').read_text())
        self.w = {}
        for shard in sorted(set(index['weight_map'].values())):
            self.w.update(read_safetensors(fixture / shard))
        self.cfg = json.loads((fixture / 'config.json').read_text())
        self.dim, self.heads = self.cfg['dim'], self.cfg['num_heads']
        d = self.dim // self.heads
        self.freqs = torch.cat([self.rope_params(d - 4 * (d // 6)), self.rope_params(2 * (d // 6)),
                                self.rope_params(2 * (d // 6))], dim=1)

    @staticmethod
    def rope_params(dim, theta=10000):
        freqs = torch.outer(torch.arange(1024),
                            1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float64).div(dim)))
        return torch.polar(torch.ones_like(freqs), freqs)

    def rope_apply(self, x, grid):
        n, c = x.size(2), x.size(3) // 2
        f, h, w = grid
        parts = self.freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
        freqs = torch.cat([parts[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
                           parts[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
                           parts[2][:w].view(1, 1, w, -1).expand(f, h, w, -1)],
                          dim=-1).reshape(f * h * w, 1, -1)
        rotated = torch.view_as_complex(x[0].to(torch.float64).reshape(f * h * w, n, -1, 2)) * freqs
        return torch.view_as_real(rotated).flatten(2).unsqueeze(0).float()

    def linear(self, x, name):
        return F.linear(x, self.w[name + '.weight'], self.w[name + '.bias'])

    def rms_norm(self, x, name):
        eps = self.cfg['eps']
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.w[name + '.weight']

    def layer_norm(self, x, name=None):
        weight = self.w[name + '.weight'] if name else None
        bias = self.w[name + '.bias'] if name else None
        return F.layer_norm(x, (self.dim,), weight, bias, self.cfg['eps'])

    def attention(self, q, k, v):
        # The reference's stand-in for the official bf16 flash attention.
        q, k, v = (bf16(t).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        return (torch.softmax(scores, -1) @ v).transpose(1, 2).flatten(2)

    def forward(self, x, t, context):
        cfg, dim, n = self.cfg, self.dim, self.heads
        d = dim // n
        patch = tuple(cfg['patch_size'])
        x = F.conv3d(x, self.w['patch_embedding.weight'], self.w['patch_embedding.bias'], stride=patch)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        b, s = x.shape[:2]

        half = cfg['freq_dim'] // 2
        position = t.to(torch.float64)
        sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).to(position).div(half)))
        e = torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1).float()
        e = self.linear(F.silu(self.linear(e, 'time_embedding.0')), 'time_embedding.2')
        e0 = self.linear(F.silu(e), 'time_projection.1').unflatten(1, (6, dim))

        pad = cfg['text_len'] - context.size(1)
        context = torch.cat([context, context.new_zeros(b, pad, context.size(2))], 1)
        context = self.linear(F.gelu(self.linear(context, 'text_embedding.0'), approximate='tanh'),
                              'text_embedding.2')

        for i in range(cfg['num_layers']):
            p = f'blocks.{i}.'
            m = (self.w[p + 'modulation'] + e0).chunk(6, dim=1)
            h = self.layer_norm(x) * (1 + m[1]) + m[0]
            q = self.rms_norm(self.linear(h, p + 'self_attn.q'), p + 'self_attn.norm_q').view(b, s, n, d)
            k = self.rms_norm(self.linear(h, p + 'self_attn.k'), p + 'self_attn.norm_k').view(b, s, n, d)
            v = self.linear(h, p + 'self_attn.v').view(b, s, n, d)
            y = self.attention(self.rope_apply(q, grid), self.rope_apply(k, grid), v)
            x = x + self.linear(y, p + 'self_attn.o') * m[2]

            h = self.layer_norm(x, p + 'norm3')
            q = self.rms_norm(self.linear(h, p + 'cross_attn.q'), p + 'cross_attn.norm_q').view(b, -1, n, d)
            k = self.rms_norm(self.linear(context, p + 'cross_attn.k'), p + 'cross_attn.norm_k').view(b, -1, n, d)
            v = self.linear(context, p + 'cross_attn.v').view(b, -1, n, d)
            x = x + self.linear(self.attention(q, k, v), p + 'cross_attn.o')

            h = self.layer_norm(x) * (1 + m[4]) + m[3]
            y = self.linear(F.gelu(self.linear(h, p + 'ffn.0'), approximate='tanh'), p + 'ffn.2')
            x = x + y * m[5]

        hm = (self.w['head.modulation'] + e.unsqueeze(1)).chunk(2, dim=1)
        x = self.linear(self.layer_norm(x) * (1 + hm[1]) + hm[0], 'head.head')
        c = cfg['out_dim']
        u = torch.einsum('fhwpqrc->cfphqwr', x[0].view(*grid, *patch, c))
        return u.reshape(c, *[g * q for g, q in zip(grid, patch)]).unsqueeze(0)

    def sample(self, noise, context, steps=4, shift=3.0, guidance=5.0):
        s = np.linspace(1, 0, steps + 1)
        sigmas = shift * s / (1 + (shift - 1) * s)
        x = noise
        for i in range(steps):
            t = torch.tensor([1000.0 * sigmas[i]], dtype=torch.float32)
            v_cond = self.forward(x, t, context)
            v_uncond = self.forward(x, t, torch.zeros_like(context))
            x = x + float(sigmas[i + 1] - sigmas[i]) * (v_uncond + guidance * (v_cond - v_uncond))
        return x


def relative_l2(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def ensemble(run, inputs, want, draws):
    """Spread of `run` under a relative 1e-7 dither of `inputs`, and the reference's distance
    to the ensemble mean: dist^2 ~ systematic^2 + spread^2 (1 + 1/draws)."""
    outs = []
    for i in range(draws):
        g = torch.Generator().manual_seed(1000 + i)
        outs.append(run(inputs * (1 + 1e-7 * torch.randn(inputs.shape, generator=g))).double())
    stack = torch.stack(outs)
    mean = stack.mean(0)
    scale = want.double().norm()
    spread = (((stack - mean) ** 2).sum() / (draws - 1)).sqrt().item() / scale.item()
    dist = ((want.double() - mean).norm() / scale).item()
    systematic = math.sqrt(max(dist ** 2 - spread ** 2 * (1 + 1 / draws), 0.0))
    return spread, dist, systematic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--fixture', type=Path,
                        default=Path(__file__).resolve().parents[2] / 'shared/fixtures/wan-mini')
    parser.add_argument('--draws', type=int, default=0,
                        help='ensemble size for the chaos measurement (0: none)')
    parser.add_argument('--no-sample', action='store_true', help='check the forward only')
    args = parser.parse_args()

    model = WanMini(args.fixture)
    ref = read_safetensors(args.fixture / 'reference.safetensors')
    checks = [('velocity', ref['x'], lambda x: model.forward(x, ref['t'], ref['context']))]
    if not args.no_sample:
        checks.append(('sample', ref['noise'], lambda x: model.sample(x, ref['context'])))
    with torch.no_grad():
        for name, inputs, run in checks:
            print(f'{name}: relative L2 error {relative_l2(run(inputs), ref[name]):.3e}', flush=True)
            if args.draws > 1:
                spread, dist, systematic = ensemble(run, inputs, ref[name], args.draws)
                print(f'{name}: {args.draws} draws with inputs dithered by 1e-7: spread {spread:.3e}, '
                      f'two runs differ by ~{spread * math.sqrt(2):.3e}; reference to their mean '
                      f'{dist:.3e}, systematic part ~{systematic:.3e}', flush=True)


if __name__ == '__main__':
    main()
