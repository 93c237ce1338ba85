#!/usr/bin/env python3
"""Golden numbers for the engine's bitsandbytes AdamW (src/engine/optim/bnb.rs): bitsandbytes
0.50.2 on CPU, torch 2.11, `ax` env. Writes golden/optim/adamw8bit.safetensors.

Contents (all tensors flat):
  map.signed, map.unsigned       create_dynamic_map(signed=True/False), the state1/state2 codes
  quant.x, quant.q, quant.absmax quantize_blockwise(x, map.signed, blocksize=256) (CPU kernel)
  uquant.x, uquant.q, uquant.absmax   the same with map.unsigned on |x|
  a.init (97x45 = 4365 elements: 17 blocks of 256 + a last block of 13 -> the 8-bit path),
  b.init (40x24 = 960 elements < min_8bit_size 4096 -> the 32-bit path),
  lr (float64, one per step), grad.{a,b}.{k} for steps k = 1..STEPS,
  bit8.{a,b}.{k}: parameters after step k under AdamW(optim_bits=8) ("adamw_8bit"),
  bit8.a.{state1,state2,absmax1,absmax2}.{k}, bit8.b.{state1,state2}.{k},
  bit32.{a,b}.{k} and bit32.{a,b}.{state1,state2}.{k}: AdamW(optim_bits=32, is_paged=True)
  ("paged_adamw_32bit"; paging is ignored on CPU).
The first 256 gradients of `a` are zero at every step (a block whose absmax is 0).

Usage (repo root): ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/bnb_adamw8bit_golden.py
"""
import os

import bitsandbytes as bnb
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file

assert bnb.__version__ == "0.50.2", bnb.__version__
torch.manual_seed(1234)
STEPS = 4
BETAS, EPS, WD = (0.9, 0.999), 1e-8, 0.1
LRS = [1e-2, 3e-3, 5e-2, 2e-3]

out = {}
out["map.signed"] = F.create_dynamic_map(signed=True)
out["map.unsigned"] = F.create_dynamic_map(signed=False)

# quantisation alone: magnitudes over many decades, a partial last block of 13
x = torch.randn(4365) * torch.logspace(-8, 0, 4365)[torch.randperm(4365)]
q, st = F.quantize_blockwise(x, code=out["map.signed"], blocksize=256)
out["quant.x"], out["quant.q"], out["quant.absmax"] = x, q, st.absmax
ux = x.abs()
q, st = F.quantize_blockwise(ux, code=out["map.unsigned"], blocksize=256)
out["uquant.x"], out["uquant.q"], out["uquant.absmax"] = ux, q, st.absmax

a0 = torch.randn(97, 45) * 0.05
b0 = torch.randn(40, 24) * 0.05
out["a.init"], out["b.init"] = a0.clone().reshape(-1), b0.clone().reshape(-1)
out["lr"] = torch.tensor(LRS, dtype=torch.float64)
grads = []
for k in range(1, STEPS + 1):
    ga = torch.randn(97, 45) * 1e-2
    ga.view(-1)[:256] = 0.0
    ga.view(-1)[1024:1280] *= 100.0  # one loud block
    gb = torch.randn(40, 24) * 1e-2
    grads.append((ga, gb))
    out[f"grad.a.{k}"], out[f"grad.b.{k}"] = ga.reshape(-1).clone(), gb.reshape(-1).clone()


def run(tag, **kw):
    a = torch.nn.Parameter(a0.clone())
    b = torch.nn.Parameter(b0.clone())
    opt = bnb.optim.AdamW([a, b], lr=LRS[0], betas=BETAS, eps=EPS, weight_decay=WD, **kw)
    for k in range(1, STEPS + 1):
        a.grad, b.grad = grads[k - 1][0].clone(), grads[k - 1][1].clone()
        for g in opt.param_groups:
            g["lr"] = LRS[k - 1]
        opt.step()
        for name, p in (("a", a), ("b", b)):
            out[f"{tag}.{name}.{k}"] = p.detach().reshape(-1).clone()
            s = opt.state[p]
            for key in ("state1", "state2", "absmax1", "absmax2"):
                if key in s:
                    out[f"{tag}.{name}.{key}.{k}"] = s[key].reshape(-1).clone()
    return opt


o8 = run("bit8", optim_bits=8)
assert o8.state[o8.param_groups[0]["params"][0]]["state1"].dtype == torch.uint8
assert o8.state[o8.param_groups[0]["params"][1]]["state1"].dtype == torch.float32
run("bit32", optim_bits=32, is_paged=True)

path = os.path.join("golden", "optim", "adamw8bit.safetensors")
os.makedirs(os.path.dirname(path), exist_ok=True)
save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"bitsandbytes": bnb.__version__, "torch": torch.__version__})
print(path, len(out), "tensors")
