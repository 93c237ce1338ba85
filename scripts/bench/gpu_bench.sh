#!/usr/bin/env bash
# One device call: tunebridge bench and the HF + PEFT peer, side by side on the same GPU.
# Expects the release binary at .gpu/tunebridge (built on a dev machine; see
# docs/PERFORMANCE.md "training (bench)"). Results: $OUT/bench.jsonl, logs in $OUT/.
set -u
OUT=${OUT:-/tmp/bench-out}
mkdir -p "$OUT"
SP=/opt/torch/.venv/lib/python3.12/site-packages
export LD_LIBRARY_PATH=$SP/torch/lib:$SP/nvidia/cu13/lib
export PYTHONUNBUFFERED=1
J=$OUT/bench.jsonl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
TB=.gpu/tunebridge
# smoke: tiny shape on CUDA (also checks that the allocator statistics read sanely)
$TB bench --shape tiny --device cuda --seq 256 --batch 2 --steps 2 2>&1 | tee "$OUT/smoke.log"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  echo "smoke failed; retry without allocator statistics"
  export TUNEBRIDGE_NO_ALLOCATOR_STATS=1
  $TB bench --shape tiny --device cuda --seq 256 --batch 2 --steps 2 2>&1 | tee -a "$OUT/smoke.log"
fi
run() { # name, command...
  local name=$1; shift
  echo "=== $name"
  timeout 240 "$@" > "$OUT/$name.log" 2>&1; echo "rc=$?" >> "$OUT/$name.log"
  tail -n 3 "$OUT/$name.log"
}
# parity: golden runs on CUDA (fp32 and bf16) against the CPU goldens' losses
if [ -z "${SKIP_PARITY:-}" ]; then
  for g in axolotl-lora-llama torchtune-lora-qwen2; do
    for dt in fp32 bf16; do
      $TB run golden/runs/$g/config.yaml --device cuda --dtype $dt -o "/tmp/parity-$g-$dt" -q >> "$OUT/parity.log" 2>&1 || echo "parity run $g $dt failed"
      python3 - "$g" "$dt" "/tmp/parity-$g-$dt/metrics.jsonl" "golden/runs/$g/metrics.jsonl" <<'PY'
import json, sys
g, dt, got, want = sys.argv[1:]
a = [json.loads(l)["loss"] for l in open(got)]
b = [json.loads(l)["loss"] for l in open(want)]
print(f"parity {g} {dt}: {len(a)} steps, max rel loss error {max(abs(x - y) / abs(y) for x, y in zip(a, b)):.2e}")
PY
    done
  done
fi
BENCH="--shape llama3-8b --device cuda --seq 2048 --warmup 2 --steps 5 --json $J"
for name in ${BENCH_RUNS:-tb-b4-on tb-b8-on tb-b4-off hf-b4-on hf-b8-on hf-b4-off}; do
  IFS=- read -r eng b rc <<< "$name"
  case $eng in
    tb) run "$name" $TB bench $BENCH --batch "${b#b}" --recompute "$rc" ;;
    tbgqa) TUNEBRIDGE_SDPA_GQA=1 run "$name" $TB bench $BENCH --batch "${b#b}" --recompute "$rc" ;;
    tbq) run "$name" $TB bench $BENCH --batch "${b#b}" --recompute "$rc" --method qlora ;;
    hf) run "$name" python3 scripts/bench/hf_peft_lora.py --batch "${b#b}" --seq 2048 --recompute "$rc" --warmup 2 --steps 5 --json "$J" ;;
  esac
done
echo "=== summary"
python3 - "$J" <<'PY'
import json, sys
print(f"{'engine':<11} {'method':<6} {'B':>2} {'recompute':>9} {'tok/s':>8} {'step s':>7} {'alloc GiB':>9} {'resv GiB':>8} {'dev GiB':>8}  error")
for l in open(sys.argv[1]):
    r = json.loads(l)
    g = lambda k: (r.get(k) or 0) / 2**30
    print(f"{r['engine']:<11} {r.get('method', 'lora'):<6} {r['batch']:>2} {str(r['recompute']):>9} {r.get('tokens_per_sec') or 0:>8.0f} {r.get('median_step_secs') or 0:>7.3f} "
          f"{g('peak_allocated_bytes'):>9.1f} {g('peak_reserved_bytes'):>8.1f} {g('device_used_bytes'):>8.1f}  {(r.get('error') or '')[:60]}")
PY
