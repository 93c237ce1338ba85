#!/usr/bin/env bash
# Golden run: TorchTune 0.6.1 lora_finetune_distributed (FSDP2) on fixtures/models/tiny-qwen2 on
# 2 CPU ranks (gloo), fp32. The config is torchtune-lora-qwen2's; each rank takes batch_size 2 ×
# GA 2, so the global batch is 8 and 2 epochs are 16 steps.
# The recipe needs three CPU-only changes and records the initial adapter (no numerics):
# recipe-cpu-ranks.patch next to this file, applied to a copy of the installed recipe.
set -euo pipefail
NAME=torchtune-lora-qwen2-2ranks
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
RUN="$REPO/golden/runs/$NAME"
TT="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}/tt/bin"
SCRATCH="$REPO/target/golden-scratch/$NAME"   # = output_dir in config.yaml
cd "$REPO"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 PYTHONHASHSEED=0
SITE="$("$TT/python" -c 'import os, torchtune; print(os.path.dirname(os.path.dirname(torchtune.__file__)))')"
cp "$SITE/recipes/lora_finetune_distributed.py" "$SCRATCH/recipe.py"
patch --quiet "$SCRATCH/recipe.py" "$RUN/recipe-cpu-ranks.patch"
# `tune run` takes a recipe file by a relative path only ("Relative module names not supported")
rm -rf "$RUN/init_adapter"; mkdir -p "$RUN/init_adapter"
GOLDEN_INIT_ADAPTER_OUT="$RUN/init_adapter/adapter_model_torchtune.safetensors" \
  "$TT/tune" run --nnodes 1 --nproc_per_node 2 "target/golden-scratch/$NAME/recipe.py" \
  --config "$RUN/config.yaml" 2>&1 | tee "$SCRATCH/stdout.txt"
LOG="$(ls "$SCRATCH"/logs/log_*.txt | head -1)"
cp "$LOG" "$RUN/log.txt"
"$TT/python" scripts/reference/golden_tools.py tt-metrics "$RUN/log.txt" "$RUN/metrics.jsonl"
LAST="$(ls -d "$SCRATCH"/epoch_* | sort -V | tail -1)"
"$TT/python" scripts/reference/golden_tools.py tt-export-adapter "$LAST" "$RUN"
