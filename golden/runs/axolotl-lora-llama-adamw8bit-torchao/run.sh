#!/usr/bin/env bash
# Golden run: Axolotl 0.19.0 `axolotl train` LoRA r64 on fixtures/models/tiny-llama (CPU, fp32) with
# `optimizer: adamw_torch_8bit` (HF Trainer -> torchao 0.17 AdamW8bit, block_size 256, its step
# torch.compile'd by inductor), starting from a pinned PEFT adapter (seed 42) passed as lora_model_dir.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
INIT_ADAPTER_ARGS="fixtures/models/tiny-llama --r 64 --alpha 64 --dropout 0.0 --seed 42 --target-linear" \
  bash "$REPO/scripts/reference/run_axolotl.sh" axolotl-lora-llama-adamw8bit-torchao
