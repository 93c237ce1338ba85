"""fixtures/models/tiny-llama-outliers: tiny-llama with LLM.int8-style outlier features.

LLM.int8 (bitsandbytes MatMul8bitLt) multiplies the activation columns holding a value
>= llm_int8_threshold (6.0) in 16 bits and the rest in int8. Real 7B+ models have a few hidden
dimensions with such outliers; tiny-llama's normed hidden states stay near unit scale, so its
int8 path would never take the outlier branch. This copy scales two hidden dimensions of every
RMSNorm weight (input, post-attention, final) by 12, so the q/k/v/gate/up inputs carry
outliers in those columns while o_proj/down_proj inputs stay plain int8.

Run from the repository root: ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/make_tiny_outliers.py
"""
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

SRC = Path("fixtures/models/tiny-llama")
DST = Path("fixtures/models/tiny-llama-outliers")
OUTLIER_DIMS = [5, 37]
SCALE = 12.0

DST.mkdir(parents=True, exist_ok=True)
for f in SRC.iterdir():
    if f.name != "model.safetensors":
        shutil.copy(f, DST / f.name)
tensors = load_file(SRC / "model.safetensors")
for name, t in tensors.items():
    if name.endswith("norm.weight"):
        t[OUTLIER_DIMS] *= SCALE
save_file(tensors, DST / "model.safetensors", metadata={"format": "pt"})
print(json.dumps({"dims": OUTLIER_DIMS, "scale": SCALE, "out": str(DST)}))
