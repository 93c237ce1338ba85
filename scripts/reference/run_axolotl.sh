#!/usr/bin/env bash
# Shared driver for the Axolotl golden runs: bash scripts/reference/run_axolotl.sh <run-name>
# Expects golden/runs/<run-name>/config.yaml whose output_dir / dataset_prepared_path live under
# target/golden-scratch/<run-name>/ and whose lora_model_dir (if any) is golden/runs/<run-name>/init_adapter.
# Environment: INIT_ADAPTER_ARGS = arguments for `golden_tools.py peft-init-adapter` (LoRA runs);
#              NPROC = number of data-parallel CPU ranks (gloo) under torchrun (default: one process).
set -euo pipefail
NAME="$1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$REPO/golden/runs/$NAME"
AX="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}/ax/bin"
SCRATCH="$REPO/target/golden-scratch/$NAME"
cd "$REPO"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
export CUDA_VISIBLE_DEVICES= AXOLOTL_DO_NOT_TRACK=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 PYTHONHASHSEED=0 WANDB_DISABLED=true \
       PYTHONPATH="$REPO/scripts/reference${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${INIT_ADAPTER_ARGS:-}" ]; then
  rm -rf "$RUN/init_adapter"
  # shellcheck disable=SC2086
  "$AX/python" scripts/reference/golden_tools.py peft-init-adapter $INIT_ADAPTER_ARGS "$RUN/init_adapter"
  export GOLDEN_INIT_ADAPTER="$RUN/init_adapter"
fi
export GOLDEN_BATCHES="$SCRATCH/batches.jsonl"
if [ "${NPROC:-1}" -gt 1 ]; then
  # torchrun's own rendezvous on this host; the HF Trainer picks gloo for CPU ranks
  "$AX/torchrun" --nproc-per-node "$NPROC" --master-port "${MASTER_PORT:-29531}" \
    scripts/reference/axolotl_cpu_ranks.py "$RUN/config.yaml" 2>&1 | tee "$SCRATCH/stdout.txt"
else
  "$AX/axolotl" train "$RUN/config.yaml" --launcher python 2>&1 | tee "$SCRATCH/stdout.txt"
fi
OUT="$SCRATCH/out"
CK="$(ls -d "$OUT"/checkpoint-* | sort -V | tail -1)"
cp "$CK/trainer_state.json" "$RUN/trainer_state.json"
"$AX/python" scripts/reference/golden_tools.py hf-metrics "$RUN/trainer_state.json" "$RUN/metrics.jsonl"
for f in adapter_model.safetensors adapter_config.json; do [ -f "$OUT/$f" ] && cp "$OUT/$f" "$RUN/$f"; done
if [ "${NPROC:-1}" -gt 1 ]; then
  for r in $(seq 0 $((NPROC - 1))); do cp "$GOLDEN_BATCHES.rank$r" "$RUN/batches.rank$r.jsonl"; done
else
  cp "$GOLDEN_BATCHES" "$RUN/batches.jsonl"
fi
# the log without progress-bar noise (tqdm redraws use \r)
tr '\r' '\n' < "$SCRATCH/stdout.txt" | sed -e 's/^ *//' | grep -v -E '^[0-9]+%\||^$' > "$RUN/log.txt" || true
