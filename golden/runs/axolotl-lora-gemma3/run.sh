#!/usr/bin/env bash
# Golden run: Axolotl 0.19.0 `axolotl train` LoRA on fixtures/models/tiny-gemma3 (CPU, fp32),
# starting from a pinned PEFT adapter (seed 42) passed as lora_model_dir.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
INIT_ADAPTER_ARGS="fixtures/models/tiny-gemma3 --r 8 --alpha 16 --dropout 0.0 --seed 42 --target-linear" \
  bash "$REPO/scripts/reference/run_axolotl.sh" axolotl-lora-gemma3
