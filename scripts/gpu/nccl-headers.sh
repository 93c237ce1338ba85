#!/usr/bin/env bash
# The CUDA 13 and NCCL headers that libtorch 2.11's ProcessGroupNCCL.hpp includes, from the same
# PyPI wheels torch==2.11.0 depends on (headers only; the wheels are deleted afterwards). Prints
# the value for TUNEBRIDGE_NCCL_INCLUDE, with which `cargo build --features engine` also builds
# libtb_c10d_nccl.so beside the binary (docs/ENGINE-BUILD.md, "NCCL").
#
#   export TUNEBRIDGE_NCCL_INCLUDE="$(bash scripts/gpu/nccl-headers.sh)"
set -euo pipefail
DIR="${TUNEBRIDGE_CUDA_HEADERS:-$HOME/.cache/tunebridge/cuda-13.0-headers}"
WHEELS=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85
        nvidia-cublas==13.1.0.3 nvidia-cusparse==12.6.3.3 nvidia-cusolver==12.0.4.66
        nvidia-nccl-cu13==2.28.9)
if [ ! -f "$DIR/.complete" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  platforms=(manylinux2014_x86_64)
  for v in $(seq 17 28); do platforms+=("manylinux_2_${v}_x86_64"); done
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    "${platforms[@]/#/--platform=}" -d "$tmp" "${WHEELS[@]}" >&2
  mkdir -p "$DIR"
  for w in "$tmp"/*.whl; do
    python3 - "$w" "$DIR" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(out, [n for n in z.namelist() if "/include/" in n])
PY
  done
  touch "$DIR/.complete"
fi
echo "$DIR/nvidia/cu13/include:$DIR/nvidia/nccl/include"
