#!/usr/bin/env bash
# Golden run: Axolotl 0.19.0 LoRA on fixtures/models/tiny-llama on 2 data-parallel CPU ranks
# (torchrun, gloo; CPU, fp32), starting from the pinned PEFT adapter of axolotl-lora-llama.
# Same config as axolotl-lora-llama but the world size: global batch 2 ranks x 2 x GA 2 = 8,
# so an epoch of 64 samples is 8 steps and max_steps 16 covers both epochs.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
NPROC=2 INIT_ADAPTER_ARGS="fixtures/models/tiny-llama --r 8 --alpha 16 --dropout 0.0 --seed 42 --target-linear" \
  bash "$REPO/scripts/reference/run_axolotl.sh" axolotl-lora-llama-2ranks
