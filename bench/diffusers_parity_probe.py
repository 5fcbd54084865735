# Which operations make diffusers' WanTransformer3DModel and the C++ runner differ in float32
# before q/k/v are rounded to bf16 (bench/RESULTS.md, "Which operations differ"). Needs the
# Python module (PYTHONPATH=build/python) and the wan-mini fixture.
import os

import torch
import sparseplan.diffusers as spd
from safetensors.torch import load_file
torch.manual_seed(0)
W = os.environ.get("WAN_MINI", os.path.join(os.path.dirname(__file__), "../../shared/fixtures/wan-mini"))
model = spd.load_wan_checkpoint(W)
ref = load_file(os.path.join(W, "reference.safetensors"))
x, t, ctx = ref["x"], ref["t"], ref["context"]
print("x", tuple(x.shape), "t", t, "ctx", tuple(ctx.shape))
cap = {}
orig = model.blocks[0].attn1.processor
class Grab:
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        cap["h"] = hidden_states.clone()
        q = attn.to_q(hidden_states); cap["q_lin"] = q.clone()
        cap["q_norm"] = attn.norm_q(q).clone()
        return orig(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
model.blocks[0].attn1.set_processor(Grab())
ce = model.condition_embedder
orig_ce = ce.forward
def ce_fwd(*a, **k):
    out = orig_ce(*a, **k); cap["temb"] = out[0].clone(); cap["tproj"] = out[1].clone(); return out
ce.forward = ce_fwd
orig_pe = model.patch_embedding.forward
def pe_fwd(inp):
    o = orig_pe(inp); cap["patch"] = o.clone(); return o
model.patch_embedding.forward = pe_fwd
with torch.no_grad():
    model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)

sd = model.state_dict()
p = model.config.patch_size
B, C, F, H, Wd = x.shape
f, h, w = F // p[0], H // p[1], Wd // p[2]
with torch.no_grad():
    # C++: patch embedding as a linear map of flattened patches
    xf = x.reshape(B, C, f, p[0], h, p[1], w, p[2]).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, f*h*w, -1)
    pw = sd["patch_embedding.weight"].reshape(sd["patch_embedding.weight"].shape[0], -1)
    patch_cpp = torch.nn.functional.linear(xf, pw, sd["patch_embedding.bias"])
    patch_dif = cap["patch"].flatten(2).transpose(1, 2)
    print("patch embed: max|diff|", float((patch_cpp - patch_dif).abs().max()), "equal frac", float((patch_cpp == patch_dif).float().mean()))
    # time embedding: float64 sinusoid (C++) vs diffusers float32
    half = model.config.freq_dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    s = torch.outer(t.double(), freqs)
    e64 = torch.cat([torch.cos(s), torch.sin(s)], 1).float()
    e32 = ce.timesteps_proj(t)
    print("sinusoid: max|diff|", float((e64 - e32).abs().max()))
    te = ce.time_embedder
    temb_cpp = te.linear_2(torch.nn.functional.silu(te.linear_1(e64)))
    print("temb: max|diff| vs diffusers", float((temb_cpp - cap["temb"]).abs().max()))
    # RMSNorm: formula vs nn.RMSNorm on the same input
    q = cap["q_lin"]; nq = model.blocks[0].attn1.norm_q
    r_formula = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + nq.eps) * nq.weight
    print("rmsnorm: max|diff|", float((r_formula - cap["q_norm"]).abs().max()), "equal frac", float((r_formula == cap["q_norm"]).float().mean()))
    def flips(a, b):
        return float((a.to(torch.bfloat16) != b.to(torch.bfloat16)).float().mean())
    print("rmsnorm bf16 flips", flips(r_formula, cap["q_norm"]))
    # GELU tanh: formula vs F.gelu
    z = torch.randn(100000) * 3
    k = 0.7978845608028654
    g1 = 0.5 * z * (1.0 + torch.tanh(k * (z + 0.044715 * z * z * z)))
    g2 = torch.nn.functional.gelu(z, approximate="tanh")
    print("gelu: max|diff|", float((g1 - g2).abs().max()), "equal frac", float((g1 == g2).float().mean()))

# layer-0 q/k bf16 flips caused by each source: run diffusers with one piece swapped to the C++ way
def run(patch_linear, sin64):
    out = {}
    class G:
        def __call__(self, attn, hs, ehs=None, am=None, rotary_emb=None):
            out["q"] = attn.norm_q(attn.to_q(hs)).clone(); out["k"] = attn.norm_k(attn.to_k(hs)).clone()
            return orig(attn, hs, ehs, am, rotary_emb)
    model.blocks[0].attn1.set_processor(G())
    def pe(inp):
        if not patch_linear: return orig_pe(inp)
        Bq = inp.shape[0]
        xf = inp.reshape(Bq, C, f, p[0], h, p[1], w, p[2]).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(Bq, f*h*w, -1)
        o = torch.nn.functional.linear(xf, pw, sd["patch_embedding.bias"])
        return o.transpose(1, 2).reshape(Bq, -1, f, h, w)
    model.patch_embedding.forward = pe
    tp = ce.timesteps_proj.forward
    if sin64:
        def tpf(tt):
            s = torch.outer(tt.double(), freqs); return torch.cat([torch.cos(s), torch.sin(s)], 1).float()
        ce.timesteps_proj.forward = tpf
    with torch.no_grad():
        model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)
    ce.timesteps_proj.forward = tp
    return out
base = run(False, False)
for pl, s64 in [(True, False), (False, True), (True, True)]:
    o = run(pl, s64)
    fl = lambda a, b: float((a.to(torch.bfloat16) != b.to(torch.bfloat16)).float().mean())
    print(f"patch_linear={pl} sin64={s64}: layer-0 q flips {fl(o['q'], base['q']):.2e}, k flips {fl(o['k'], base['k']):.2e}")
