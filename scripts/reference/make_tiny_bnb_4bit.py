#!/usr/bin/env python3
"""A pre-quantised bitsandbytes NF4 checkpoint of tiny-llama, as `unsloth/*-bnb-4bit` repos are.

Loads fixtures/models/tiny-llama with transformers' BitsAndBytesConfig(load_in_4bit=True,
bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, fp32) on the CPU (bitsandbytes
0.50.2 quantises on CPU) and saves it: every decoder linear becomes `weight` (uint8 packed),
`weight.absmax` (uint8), `weight.quant_map`, `weight.nested_absmax`, `weight.nested_quant_map`
and `weight.quant_state.bitsandbytes__nf4` (the JSON quant state as bytes); `lm_head`, the
embeddings and norms stay fp32; config.json gets `quantization_config`.

    OMP_NUM_THREADS=1 ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/make_tiny_bnb_4bit.py

Writes fixtures/models/tiny-llama-bnb-4bit/ (the tokenizer files copied from tiny-llama).
"""

import os
import shutil

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "fixtures", "models", "tiny-llama")
OUT = os.path.join(ROOT, "fixtures", "models", "tiny-llama-bnb-4bit")


def main():
    q = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    model = AutoModelForCausalLM.from_pretrained(
        SRC, quantization_config=q, device_map="cpu", dtype=torch.float32
    )
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    for f in sorted(os.listdir(SRC)):
        if f.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(os.path.join(SRC, f), os.path.join(OUT, f))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
