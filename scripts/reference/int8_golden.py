"""LLM.int8 golden: what the real bitsandbytes computes on CPU, for tunebridge's int8 path.

bitsandbytes 0.50.2 `Linear8bitLt` as transformers builds it for `load_in_8bit=True`
(`has_fp16_weights=False`, `threshold=6.0`), for a few cases `<case>`:

- `<case>.weight`: the dense weight (fp16 or fp32), (out, in)
- `<case>.CB` (int8, (out, in)) and `<case>.SCB` (fp32, (out)): `Int8Params` after it reached
  the CPU (its `_quantize`)
- `<case>.x`: an input (…, in) in the model dtype, some columns holding outliers >= 6.0
- `<case>.y_eval`: `Linear8bitLt.eval()(x)`: MatMul8bitLt (int8 activations, outlier columns
  in 16 bits)
- `<case>.y_train`, `<case>.dx_train`: `Linear8bitLt.train()(x)` (MatMul8bitFp on the CPU) and
  the input gradient of sum(y · g) for `<case>.g`

Run with the Axolotl reference env (bitsandbytes 0.50.2, torch 2.11 CPU):
    OMP_NUM_THREADS=1 ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/int8_golden.py golden/int8
"""

import json
import sys
from pathlib import Path

import bitsandbytes
import torch
from safetensors.torch import save_file


def cases():
    g = torch.Generator().manual_seed(0)
    # fp16, as Axolotl loads an 8-bit base without bf16; two outlier columns
    w = torch.randn(48, 64, generator=g) * 0.05
    x = torch.randn(2, 5, 64, generator=g)
    x[..., 3] *= 9.0
    x[0, 1, 40] = -6.5
    yield "fp16", w.half(), x.half()
    # fp32 activations (cast to fp16 inside MatMul8bitLt), no outliers at all
    w = torch.randn(32, 40, generator=g) * 0.05
    x = torch.randn(7, 40, generator=g)
    yield "fp32_no_outliers", w, x
    # bf16 with a bias, as a bf16 base
    w = torch.randn(24, 32, generator=g) * 0.05
    x = torch.randn(3, 4, 32, generator=g) * 3.0
    yield "bf16", w.bfloat16(), x.bfloat16()


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, w, x in cases():
        bias = name == "bf16"
        lin = bitsandbytes.nn.Linear8bitLt(
            w.shape[1], w.shape[0], bias=bias, has_fp16_weights=False, threshold=6.0
        )
        lin.weight = bitsandbytes.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
        if bias:
            lin.bias = torch.nn.Parameter(torch.linspace(-1, 1, w.shape[0]).to(w.dtype))
        lin = lin.to("cpu")
        tensors[f"{name}.weight"] = w
        tensors[f"{name}.CB"] = lin.weight.CB.clone()
        tensors[f"{name}.SCB"] = lin.weight.SCB.clone()
        tensors[f"{name}.x"] = x
        if bias:
            tensors[f"{name}.bias"] = lin.bias.detach().clone()
        with torch.no_grad():
            tensors[f"{name}.y_eval"] = lin.eval()(x.clone())
        lin.train()
        xg = x.clone().requires_grad_(True)
        y = lin(xg)
        gr = torch.linspace(-1, 1, y.numel()).reshape(y.shape).to(y.dtype)
        (y * gr).sum().backward()
        tensors[f"{name}.y_train"] = y.detach()
        tensors[f"{name}.g"] = gr
        tensors[f"{name}.dx_train"] = xg.grad
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "int8_golden.safetensors")
    (out / "versions.json").write_text(
        json.dumps({"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__}, indent=2) + "\n"
    )
    print(f"{len(tensors)} tensors -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "golden/int8")
