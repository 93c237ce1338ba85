#!/usr/bin/env bash
# Golden run: Axolotl 0.19.0 `axolotl train` LoRA over load_in_8bit (LLM.int8) on fixtures/models/tiny-llama-outliers (CPU, fp32),
# starting from a pinned PEFT adapter (seed 42) passed as lora_model_dir; val_set_size 0.125, eval_steps 4.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
INIT_ADAPTER_ARGS="fixtures/models/tiny-llama-outliers --r 8 --alpha 16 --dropout 0.0 --seed 42 --target-linear" \
  bash "$REPO/scripts/reference/run_axolotl.sh" axolotl-lora-llama-int8
