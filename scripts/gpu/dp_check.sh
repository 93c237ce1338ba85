#!/usr/bin/env bash
# On one GPU machine: the data-parallel path over NCCL with world size 1 against the plain run
# (same curve), then `bench --nproc-per-node 1` (the cost of the gradient all-reduce against
# the same steps without collectives, in one invocation). Run from the repository root with the
# release binary and libtb_c10d_nccl.so in .gpu/ (docs/PERFORMANCE.md, "data parallel").
set -euo pipefail
SP=/opt/torch/.venv/lib/python3.12/site-packages
export LD_LIBRARY_PATH="$SP/torch/lib:$SP/nvidia/cu13/lib:$SP/nvidia/nccl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0
TB="${TB:-.gpu/tunebridge}"
OUT="${OUT:-/tmp/dp-check}"
rm -rf "$OUT"; mkdir -p "$OUT"
CONFIG=golden/runs/axolotl-lora-llama/config.yaml
"$TB" run "$CONFIG" --device cuda -q -o "$OUT/plain"
"$TB" run "$CONFIG" --device cuda --nproc-per-node 1 -q -o "$OUT/nccl1"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def losses(run):
    rows = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl")]
    return [r["loss"] for r in rows if "loss" in r]
a, b = losses("plain"), losses("nccl1")
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"plain vs NCCL world size 1: {len(a)} vs {len(b)} steps, identical={a == b}, max rel diff {worst:.2e}")
PY
for i in 1 2; do
  "$TB" bench --shape llama3-8b --device cuda --batch 4 --seq 2048 --recompute on --warmup 2 \
    --steps 5 --nproc-per-node 1 --master-port $((29600 + i)) --json "$OUT/bench.jsonl"
done
