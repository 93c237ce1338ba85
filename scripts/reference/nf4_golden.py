"""NF4 golden: tensors quantized by the real bitsandbytes on CPU, for tunebridge's quantizer.

QLoRA's storage format (bitsandbytes `functional.quantize_4bit(W, blocksize=64,
compress_statistics=True, quant_type="nf4")`, what `Params4bit` / transformers'
`BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
bnb_4bit_use_double_quant=True)` store), for a few weight tensors:

- `<case>.input`: the weight (fp32 or bf16), row-major (out, in)
- `<case>.packed`: uint8 [(n+1)//2, 1], two 4-bit codes a byte, element 2k in the high nibble
- `<case>.absmax`: uint8 [blocks]: the per-64 absmax, minus `offset`, quantized blockwise
  (256 a block) to indices into the 8-bit dynamic map
- `<case>.nested_absmax`: fp32 [ceil(blocks/256)]: absmax of each 256-block of (absmax − offset)
- `<case>.offset`: fp32 scalar: mean of the per-64 absmax
- `<case>.dequantized`: `functional.dequantize_4bit(packed, state)` in the input dtype (for
  `ragged_fp32`, whose rows are not a multiple of 64, bnb's flat-block reference; see below)
- `<case>.absmax_fp32`: the per-64 absmax before double quantization
- `quant_map` (fp32[16]) and `nested_quant_map` (fp32[256]): the NF4 and dynamic code tables.

Run with the Axolotl reference env (bitsandbytes 0.50.2, torch 2.11 CPU):
    ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/nf4_golden.py golden/nf4
"""

import json
import sys
from pathlib import Path

import bitsandbytes
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file


def cases():
    g = torch.Generator().manual_seed(0)
    # 768 blocks of 64 → 3 nested blocks (256, 256, 256): a Linear-like weight
    yield "linear_fp32", torch.randn(256, 192, generator=g) * 0.05
    # bf16, as QLoRA loads base weights; 576 blocks → nested blocks of 256, 256, 64
    yield "linear_bf16", (torch.randn(288, 128, generator=g) * 0.05).to(torch.bfloat16)
    # rows of 40: blocks straddle rows (see `ragged` below)
    yield "ragged_fp32", torch.randn(24, 40, generator=g) * 0.05
    # 259 elements: a partial last block (3) and an odd count (a padded low nibble)
    yield "odd_fp32", torch.randn(7, 37, generator=g)
    # an all-zero block and values at the code table's exact midpoints
    z = torch.randn(4, 64, generator=g)
    z[1] = 0.0
    mids = (F.get_4bit_type("nf4", device="cpu")[:-1] + F.get_4bit_type("nf4", device="cpu")[1:]) / 2
    z[2, :15] = mids
    z[2, 15] = 1.0  # absmax 1 → scaled values are the midpoints themselves
    z[2, 16:] = 0.0
    yield "edges_fp32", z


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, w in cases():
        packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
        deq = F.dequantize_4bit(packed, state)
        if w.shape[-1] % 64 and w.shape[-1] % 2 == 0:
            # bitsandbytes 0.50.2's C++ CPU dequantize kernel disagrees with its own flat-block
            # quantizer for some row lengths that are not a multiple of 64 (seen: 96 and 160, ~90 %
            # of elements; not 40 or 100; never for real Linear layers). Record bnb's flat-block
            # reference (its default backend) for such shapes; for 40 the two agree.
            from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
            absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
            deq = _dequantize_4bit_compute(packed.reshape(-1), absmax.float(), state.code, 64, w.shape, w.dtype)
        _, plain = F.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type="nf4")
        assert state.nested and state.blocksize == 64 and state.state2.blocksize == 256
        tensors[f"{name}.input"] = w.contiguous()
        tensors[f"{name}.packed"] = packed.contiguous()
        tensors[f"{name}.absmax"] = state.absmax.contiguous()
        tensors[f"{name}.nested_absmax"] = state.state2.absmax.contiguous()
        tensors[f"{name}.offset"] = state.offset.reshape(()).float().contiguous()
        tensors[f"{name}.dequantized"] = deq.contiguous()
        tensors[f"{name}.absmax_fp32"] = plain.absmax.contiguous()
        tensors["quant_map"] = state.code.float().contiguous()
        tensors["nested_quant_map"] = state.state2.code.float().contiguous()
        print(name, tuple(w.shape), w.dtype, "packed", tuple(packed.shape), "absmax", tuple(state.absmax.shape),
              "nested", tuple(state.state2.absmax.shape))
    save_file(tensors, str(out / "nf4_golden.safetensors"))
    versions = {"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__,
                "python": sys.version.split()[0], "device": "cpu",
                "call": "bitsandbytes.functional.quantize_4bit(W, blocksize=64, compress_statistics=True, quant_type='nf4')"}
    (out / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "golden/nf4")
