#!/usr/bin/env bash
# Golden run: TorchTune 0.6.1 lora_finetune_single_device on fixtures/models/tiny-phi3-spm (CPU, fp32).
# Regenerates every file in this folder. Run from anywhere; needs the `tt` env (scripts/reference/setup_envs.sh).
set -euo pipefail
NAME=torchtune-lora-phi3
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
RUN="$REPO/golden/runs/$NAME"
TT="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}/tt/bin"
SCRATCH="$REPO/target/golden-scratch/$NAME"   # = output_dir in config.yaml
cd "$REPO"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 PYTHONHASHSEED=0
# 1. the adapter exactly as the recipe initialises it (seed 42), before step 1
rm -rf "$RUN/init_adapter"
"$TT/python" scripts/reference/golden_tools.py tt-init-adapter "$RUN/config.yaml" "$RUN/init_adapter" --data-out "$RUN"
# 2. the real run
"$TT/tune" run lora_finetune_single_device --config "$RUN/config.yaml" 2>&1 | tee "$SCRATCH/stdout.txt"
# 3. collect
LOG="$(ls "$SCRATCH"/logs/log_*.txt | head -1)"
cp "$LOG" "$RUN/log.txt"
"$TT/python" scripts/reference/golden_tools.py tt-metrics "$RUN/log.txt" "$RUN/metrics.jsonl"
LAST="$(ls -d "$SCRATCH"/epoch_* | sort -V | tail -1)"
"$TT/python" scripts/reference/golden_tools.py tt-export-adapter "$LAST" "$RUN"
