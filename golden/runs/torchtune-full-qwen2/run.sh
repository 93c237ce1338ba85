#!/usr/bin/env bash
# Golden run: TorchTune 0.6.1 full_finetune_single_device on fixtures/models/tiny-qwen2
# (CPU, fp32, constant LR, grad accumulation 2). Needs the `tt` env (scripts/reference/setup_envs.sh).
set -euo pipefail
NAME=torchtune-full-qwen2
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
RUN="$REPO/golden/runs/$NAME"
TT="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}/tt/bin"
SCRATCH="$REPO/target/golden-scratch/$NAME"   # = output_dir in config.yaml
cd "$REPO"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 PYTHONHASHSEED=0
# data order + per-sample tokens/labels exactly as the recipe builds them (no adapter: "-")
"$TT/python" scripts/reference/golden_tools.py tt-init-adapter "$RUN/config.yaml" - \
  --recipe full_finetune_single_device --data-out "$RUN"
"$TT/tune" run full_finetune_single_device --config "$RUN/config.yaml" 2>&1 | tee "$SCRATCH/stdout.txt"
LOG="$(ls "$SCRATCH"/logs/log_*.txt | head -1)"
cp "$LOG" "$RUN/log.txt"
"$TT/python" scripts/reference/golden_tools.py tt-metrics "$RUN/log.txt" "$RUN/metrics.jsonl"
LAST="$(ls -d "$SCRATCH"/epoch_* | sort -V | tail -1)"
cp "$LAST/model-00001-of-00001.safetensors" "$RUN/model.safetensors"
