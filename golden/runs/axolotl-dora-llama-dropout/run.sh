#!/usr/bin/env bash
# Golden run: Axolotl 0.19.0 `axolotl train` DoRA (peft_use_dora: PEFT 0.20 DoRA) on
# fixtures/models/tiny-llama (CPU, fp32), LoRA dropout 0.1,, starting from a pinned PEFT DoRA adapter (seed 42,
# magnitude = ‖W‖ per row) passed as lora_model_dir.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
INIT_ADAPTER_ARGS="fixtures/models/tiny-llama --r 8 --alpha 16 --dropout 0.1 --seed 42 --target-linear --dora" \
  bash "$REPO/scripts/reference/run_axolotl.sh" axolotl-dora-llama-dropout
