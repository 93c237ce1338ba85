#!/usr/bin/env bash
# Golden run: HF transformers + PEFT + TRL SFTTrainer configured like an Unsloth Alpaca notebook with packing=True,
# on fixtures/models/tiny-llama (CPU, fp32), from a pinned PEFT adapter (seed 3407). `ax` env.
set -euo pipefail
NAME=hf-trl-packing-llama
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
RUN="$REPO/golden/runs/$NAME"
AX="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}/ax/bin"
SCRATCH="$REPO/target/golden-scratch/$NAME"
cd "$REPO"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
export CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       OMP_NUM_THREADS=1 PYTHONHASHSEED=0 WANDB_DISABLED=true DO_NOT_TRACK=1 \
       HF_DATASETS_CACHE="$SCRATCH/hf-datasets-cache"
rm -rf "$RUN/init_adapter"
"$AX/python" scripts/reference/golden_tools.py peft-init-adapter fixtures/models/tiny-llama "$RUN/init_adapter" \
  --r 16 --alpha 16 --dropout 0.0 --seed 3407 \
  --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
GOLDEN_BATCHES="$SCRATCH/batches.jsonl" "$AX/python" "$RUN/train.py" "$SCRATCH/out" 2>&1 | tee "$SCRATCH/stdout.txt"
CK="$(ls -d "$SCRATCH"/out/checkpoint-* | sort -V | tail -1)"
cp "$CK/trainer_state.json" "$RUN/trainer_state.json"
"$AX/python" scripts/reference/golden_tools.py hf-metrics "$RUN/trainer_state.json" "$RUN/metrics.jsonl"
cp "$SCRATCH/out/lora_model/adapter_model.safetensors" "$SCRATCH/out/lora_model/adapter_config.json" "$RUN/"
cp "$SCRATCH/batches.jsonl" "$RUN/batches.jsonl"
tr '\r' '\n' < "$SCRATCH/stdout.txt" | sed -e 's/^ *//' | grep -v -E '^[0-9]+%\||^$' > "$RUN/log.txt" || true
grep -E "^(attn_implementation|padding_free|seq_lengths|contamination check)" "$SCRATCH/stdout.txt"
