#!/usr/bin/env python3
"""Golden numbers for the engine's torchao low-bit AdamW (src/engine/optim/torchao.rs and
ao_quant.rs): torchao 0.17.0 on CPU, torch 2.11, `ax` env. Writes golden/optim/torchao.safetensors.

The optimizer runs exactly as under HF Trainer / Axolotl (`optim="adamw_torch_8bit"` /
`"adamw_torch_4bit"`): `AdamW8bit` / `AdamW4bit(params, lr, betas, eps, weight_decay,
block_size=256)`, its step torch.compile'd by inductor (C++ on CPU).

Contents (all tensors flat):
  map8.signed, map8.unsigned, map4.signed, map4.unsigned   the qmaps of OptimState8bit / 4bit
  quant.x (4 blocks of 256; block 2 all zero)
  q8.{s,u}.codes, q8.{s,u}.scale, q8.{s,u}.deq    OptimState8bit(signed|unsigned).copy_(x | |x|)
  q4.{s,u}.codes, q4.{s,u}.scale, q4.{s,u}.deq    OptimState4bit, codes packed two per byte
  a.init (64x128 = 8192 -> quantised states), b.init (32x64 = 2048 < 4096 -> plain f32),
  c.init (4100 >= 4096 but not a multiple of 256 -> plain f32); b sits in a group with
  weight_decay 0 (HF's no-decay group), a and c in one with WD.
  lr (float64, one per step, set with param_groups[i]["lr"].fill_ as torch schedulers do),
  grad.{a,b,c}.{k} for steps k = 1..STEPS,
  bit{8,4}.{a,b,c}.{k}: parameters after step k,
  bit{8,4}.a.{exp_avg,exp_avg_sq}.{codes,scale}.{k}, bit{8,4}.{b,c}.{exp_avg,exp_avg_sq}.{k}.

Usage (repo root): OMP_NUM_THREADS=1 ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/torchao_optim_golden.py
"""
import os

import torch
import torchao
from safetensors.torch import save_file
from torchao.optim import AdamW4bit, AdamW8bit
from torchao.optim.subclass_4bit import OptimState4bit
from torchao.optim.subclass_8bit import OptimState8bit

assert torchao.__version__.startswith("0.17"), torchao.__version__
torch.manual_seed(4321)
STEPS = 5
BETAS, EPS, WD, BLOCK = (0.9, 0.999), 1e-8, 0.01, 256
out = {}

# quantisation maps and one quantise/dequantise of each kind
x = torch.randn(4 * BLOCK) * torch.tensor([1e-3, 10.0, 0.0, 1e-7]).repeat_interleave(BLOCK)
out["quant.x"] = x.clone()
for tag, cls in (("8", OptimState8bit), ("4", OptimState4bit)):
    for signed, s in ((True, "s"), (False, "u")):
        st = cls.zeros(x.shape, signed, BLOCK, "cpu")
        st.copy_(x if signed else x.abs())
        out[f"map{tag}.{'signed' if signed else 'unsigned'}"] = st.qmap.clone()
        out[f"q{tag}.{s}.codes"] = st.codes.clone().reshape(-1)
        out[f"q{tag}.{s}.scale"] = st.scale.clone()
        out[f"q{tag}.{s}.deq"] = st.dequantize().reshape(-1).clone()

shapes = {"a": (64, 128), "b": (32, 64), "c": (4100,)}
init = {k: torch.randn(s) * 0.05 for k, s in shapes.items()}
lrs = [0.0, 1e-3, 2e-3, 3e-3, 2.5e-3][:STEPS]
grads = [{k: torch.randn(s) * 10 ** torch.empty(()).uniform_(-4, -1).item() for k, s in shapes.items()}
         for _ in range(STEPS)]
out["lr"] = torch.tensor(lrs, dtype=torch.float64)
for k in shapes:
    out[f"{k}.init"] = init[k].reshape(-1).clone()
    for t in range(STEPS):
        out[f"grad.{k}.{t + 1}"] = grads[t][k].reshape(-1).clone()

for bits, cls in ((8, AdamW8bit), (4, AdamW4bit)):
    ps = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    groups = [{"params": [ps["a"], ps["c"]], "weight_decay": WD}, {"params": [ps["b"]], "weight_decay": 0.0}]
    opt = cls(groups, lr=1.0, betas=BETAS, eps=EPS, block_size=BLOCK, bf16_stochastic_round=False)
    for t in range(STEPS):
        for g in opt.param_groups:
            g["lr"].fill_(lrs[t])
        for k, p in ps.items():
            p.grad = grads[t][k].clone()
        opt.step()
        for k, p in ps.items():
            out[f"bit{bits}.{k}.{t + 1}"] = p.detach().reshape(-1).clone()
            st = opt.state[p]
            for m in ("exp_avg", "exp_avg_sq"):
                v = st[m]
                if isinstance(v, (OptimState8bit, OptimState4bit)):
                    assert k == "a", k
                    out[f"bit{bits}.{k}.{m}.codes.{t + 1}"] = v.codes.reshape(-1).clone()
                    out[f"bit{bits}.{k}.{m}.scale.{t + 1}"] = v.scale.clone()
                else:
                    assert k != "a", k
                    out[f"bit{bits}.{k}.{m}.{t + 1}"] = v.reshape(-1).clone()

path = os.path.join("golden", "optim", "torchao.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, path)
print(f"{len(out)} tensors -> {path}")
