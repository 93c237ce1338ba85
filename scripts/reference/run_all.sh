#!/usr/bin/env bash
# Regenerate every reference artefact: envs, fixture models, datasets, golden runs.
#   bash scripts/reference/run_all.sh            # everything
#   bash scripts/reference/run_all.sh runs       # golden runs only (envs + fixtures already there)
#   bash scripts/reference/run_all.sh NAME...    # only the named golden runs
# Outputs are deterministic: afterwards `git status` should show changes only in log.txt and in
# the throughput fields of trainer_state.json — any other diff is a reproducibility break.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
REF="${TUNEBRIDGE_REF_DIR:-$HOME/.cache/tunebridge/ref}"
RUNS=(torchtune-lora-qwen2 axolotl-lora-llama axolotl-lora-llama-inputs torchtune-full-qwen2 hf-trl-unsloth-style-llama
      axolotl-lora-qwen2-chat torchtune-lora-qwen2-chat axolotl-lora-llama-completion axolotl-lora-llama-input-output
      axolotl-lora-llama-eval hf-trl-adamw8bit-llama axolotl-lora-phi3 axolotl-lora-llama-packing
      axolotl-lora-llama-packing-eval axolotl-lora-llama-2ranks torchtune-lora-qwen2-2ranks
      hf-trl-packing-llama axolotl-lora-gemma2 axolotl-lora-gemma3 axolotl-lora-llama-int8
      axolotl-lora-llama-adamw8bit-torchao axolotl-lora-llama-adamw4bit-torchao
      torchtune-dora-llama torchtune-dora-llama-dropout axolotl-dora-llama axolotl-dora-llama-dropout
      torchtune-lora-phi3 torchtune-lora-gemma2)

if [ $# -eq 0 ]; then
  bash scripts/reference/setup_envs.sh
  "$REF/ax/bin/python" scripts/reference/make_tiny_models.py
  "$REF/ax/bin/python" scripts/reference/make_tiny_outliers.py
  "$REF/ax/bin/python" scripts/reference/make_datasets.py
  "$REF/tt/bin/python" scripts/reference/make_tiny_tiktoken.py
elif [ "$1" != runs ]; then
  RUNS=("$@")
fi
for r in "${RUNS[@]}"; do
  echo "=== golden run $r"
  start=$SECONDS
  bash "golden/runs/$r/run.sh" > "target/golden-scratch-$r.log" 2>&1 || { echo "FAILED: $r (see target/golden-scratch-$r.log)"; exit 1; }
  echo "    ok in $((SECONDS - start)) s: $(wc -l < "golden/runs/$r/metrics.jsonl") rows"
done
