"""The decision thresholds of bitsandbytes' CPU 8-bit blockwise quantizer (double quantisation).

bitsandbytes quantizes the NF4 absmax statistics (minus their mean) to the signed 8-bit dynamic
map with its C++ CPU kernel (`cquantize_blockwise_cpu_fp32` → `quantize_cpu` → `quantize_block`:
a `BinSearch` Direct2 bucket search, then a nearest-neighbour fix-up). That search is not an
exact nearest-value rule: the 168 → 169 boundary sits at 0.0381169 instead of the midpoint
0.0381250, and tiny positive values skip codes 124–130. Its output is still a monotone step
function of the normalised value v = x / absmax ∈ [−1, 1]; this script measures it exactly:
t_m = the smallest float32 v with index(v) ≥ m, for m = 1 … 255, by bisection on float32 bit
patterns with the real library, then checks the rule index(v) = #{m : t_m ≤ v} on dense and
random samples. tunebridge's `quant/nf4.rs` embeds the table (`DQ_THRESHOLDS`).

    ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/nf4_dq_thresholds.py golden/nf4
"""

import ctypes as ct
import json
import sys
from pathlib import Path

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F
from bitsandbytes.backends.cpu.ops import lib
from bitsandbytes.functional import get_ptr

CODE = F.create_dynamic_map().float()


def index(values: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' CPU index of each normalised value (blocks of 255 values after a 1.0)."""
    out = []
    for s in range(0, values.numel(), 255):
        block = torch.cat([torch.ones(1), values[s:s + 255].float()]).contiguous()
        absmax = torch.empty(1)
        q = torch.empty(block.numel(), dtype=torch.uint8)
        code = CODE.clone()  # the kernel writes code[0] = -1
        lib.cquantize_blockwise_cpu_fp32(get_ptr(code), get_ptr(block), get_ptr(absmax), get_ptr(q),
                                         ct.c_longlong(256), ct.c_longlong(block.numel()))
        assert absmax.item() == 1.0
        out.append(q[1:].long())
    return torch.cat(out)


def ordered(bits: np.ndarray) -> np.ndarray:
    """float32 bit patterns → integers ordered like the floats."""
    b = bits.astype(np.int64)
    return np.where(b & 0x80000000, 0x80000000 - (b & 0x7FFFFFFF), b + 0x80000000)


def unordered(o: np.ndarray) -> np.ndarray:
    return np.where(o < 0x80000000, (0x80000000 - o) | 0x80000000, o - 0x80000000).astype(np.uint32)


def floats(o: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(unordered(o).view(np.float32).copy())


def main(out_dir: str) -> None:
    lo = ordered(np.array([np.float32(-1.0)]).view(np.uint32))[0]
    hi = ordered(np.array([np.float32(1.0)]).view(np.uint32))[0]
    m = np.arange(1, 256)
    a = np.full(255, lo, dtype=np.int64)  # index(a) < m
    b = np.full(255, hi, dtype=np.int64)  # index(b) >= m
    assert index(floats(np.array([lo]))).item() == 0 and index(floats(np.array([hi]))).item() == 255
    while (b - a > 1).any():
        mid = (a + b) // 2
        ge = index(floats(mid)).numpy() >= m
        b = np.where(ge, mid, b)
        a = np.where(ge, a, mid)
    thresholds = floats(b)
    rule = lambda v: torch.searchsorted(thresholds, v, right=True)
    # check: dense grid, random values, the codes and their float neighbours
    g = torch.Generator().manual_seed(0)
    checks = [torch.linspace(-1, 1, 200001), torch.rand(200000, generator=g) * 2 - 1,
              (torch.rand(100000, generator=g) - 0.5) * 1e-3, CODE[1:],
              torch.nextafter(CODE, torch.tensor(2.0)).clamp(-1, 1), torch.nextafter(CODE, torch.tensor(-2.0)).clamp(-1, 1)]
    for v in checks:
        want = index(v)
        assert torch.equal(rule(v), want), (v[rule(v) != want][:5], rule(v)[rule(v) != want][:5], want[rule(v) != want][:5])
    mids = (CODE[:-1] + CODE[1:]) / 2
    far = (thresholds - mids).abs() > 1e-3 * (CODE[1:] - CODE[:-1])
    print("checked; thresholds off the midpoint by more than 0.1% of their gap:", int(far.sum()))
    out = Path(out_dir)
    (out / "dq_thresholds.json").write_text(json.dumps({
        "bitsandbytes": bitsandbytes.__version__,
        "what": "t_m (m = 1..255): smallest float32 v in [-1, 1] that bitsandbytes' CPU kernel maps to index >= m",
        "thresholds_f32_bits": [int(x) for x in thresholds.numpy().view(np.uint32)],
    }, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "golden/nf4")
