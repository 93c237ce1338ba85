#!/usr/bin/env bash
# Install the libtorch 2.11.0 headers + CPU libraries that `tch = "=0.24.0"` (cargo feature
# `engine`) builds and links against, on a CPU-only x86-64 Linux machine with only PyPI access.
#
# Source: the default PyPI wheel torch==2.11.0 (the cu130 build, same commit as the GPU machines),
# plus the two CUDA runtime libs libtorch_cpu.so needs at load time even without a GPU
# (libcudart.so.13, libcupti.so.13). Wheels are downloaded (never installed), the needed files are
# unzipped, the wheels deleted.
#
# Resulting layout (CPU-only link layout, see docs/ENGINE-BUILD.md):
#   $DIR/torch/include/...       libtorch headers
#   $DIR/torch/lib/              CPU libs only: libtorch.so libtorch_cpu.so libc10.so libgomp.so.1
#                                libshm.so libtorch_global_deps.so  (no libtorch_cuda.so on purpose)
#   $DIR/nvidia/cu13/lib/        libcudart.so.13 libcupti.so.13
# libtorch_cpu.so's RUNPATH has $ORIGIN/../../nvidia/cu13/lib, so the two CUDA libs are found
# through it; LD_LIBRARY_PATH still lists them explicitly.
#
# Usage: .ci/install-libtorch.sh            (idempotent: does nothing but print the env if present)
#        TUNEBRIDGE_LIBTORCH_DIR=/some/dir .ci/install-libtorch.sh
#        .ci/install-libtorch.sh --force    (reinstall)
set -euo pipefail

TORCH_VERSION=2.11.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
DIR="${TUNEBRIDGE_LIBTORCH_DIR:-$HOME/.cache/tunebridge/libtorch-${TORCH_VERSION}}"
MARKER="$DIR/.tunebridge-libtorch-installed"
MARKER_TEXT="torch==${TORCH_VERSION} nvidia-cuda-runtime==${CUDART_VERSION} nvidia-cuda-cupti==${CUPTI_VERSION} layout=cpu-v1"

# Exact wheels (pinned platform/ABI so the result does not depend on the local Python version).
TORCH_WHEEL="torch-${TORCH_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_SHA256=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
CUDART_WHEEL="nvidia_cuda_runtime-${CUDART_VERSION}-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
CUDART_SHA256=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
CUPTI_WHEEL="nvidia_cuda_cupti-${CUPTI_VERSION}-py3-none-manylinux_2_25_x86_64.whl"
CUPTI_SHA256=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8

# CPU-side libs taken from torch/lib. libtorch.so is needed because torch-sys always passes
# -ltorch (it is a thin lib; with rustc's --as-needed it is dropped from the binary).
CPU_LIBS=(libtorch.so libtorch_cpu.so libc10.so libgomp.so.1 libshm.so libtorch_global_deps.so)
CUDA_LIBS=(libcudart.so.13 libcupti.so.13)

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

print_env() {
  cat <<EOF
# libtorch ${TORCH_VERSION} for tch 0.24 is in $DIR ($(du -sh "$DIR" | cut -f1)).
# Set these (or: source .ci/libtorch-env.sh):
export LIBTORCH="$DIR/torch"
export LIBTORCH_CXX11_ABI=1
export LD_LIBRARY_PATH="$DIR/torch/lib:$DIR/nvidia/cu13/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
}

is_installed() {
  [[ -f "$MARKER" ]] && [[ "$(cat "$MARKER")" == "$MARKER_TEXT" ]] || return 1
  local f
  for f in "${CPU_LIBS[@]}"; do [[ -f "$DIR/torch/lib/$f" ]] || return 1; done
  for f in "${CUDA_LIBS[@]}"; do [[ -f "$DIR/nvidia/cu13/lib/$f" ]] || return 1; done
  [[ -f "$DIR/torch/include/torch/csrc/api/include/torch/torch.h" ]]
}

if [[ $FORCE == 0 ]] && is_installed; then
  echo "libtorch ${TORCH_VERSION} already installed (marker $MARKER); nothing to do." >&2
  print_env
  exit 0
fi

# Only ever replace a previous install of ours (or an empty dir), never an arbitrary folder.
if [[ -e "$DIR" ]] && [[ ! -f "$MARKER" ]] && [[ -n "$(ls -A "$DIR" 2>/dev/null || echo x)" ]]; then
  echo "error: $DIR exists and is not a tunebridge libtorch install; refusing to replace it" >&2
  exit 1
fi

[[ "$(uname -sm)" == "Linux x86_64" ]] || { echo "error: only Linux x86_64 is supported" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found (apt-get install python3)" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 \
  || { echo "error: 'python3 -m pip' not available (apt-get install python3-pip)" >&2; exit 1; }

# Work next to the target so the final rename is atomic; clean up on any exit.
PARENT="$(dirname "$DIR")"
mkdir -p "$PARENT"
WORK="$(mktemp -d "$PARENT/.libtorch-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/stage"
mkdir -p "$STAGE" "$WORK/wheels"

echo "Downloading torch==${TORCH_VERSION} (~530 MB) and the CUDA runtime/CUPTI wheels from PyPI..." >&2
# pip (23.x) does not widen --platform to older manylinux tags, so list the ones the wheels use.
python3 -m pip download --no-deps --no-cache-dir --progress-bar off --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 --abi none \
  -d "$WORK/wheels" \
  "torch==${TORCH_VERSION}" "nvidia-cuda-runtime==${CUDART_VERSION}" "nvidia-cuda-cupti==${CUPTI_VERSION}" >&2

(cd "$WORK/wheels" && sha256sum -c - >&2) <<EOF
$TORCH_SHA256  $TORCH_WHEEL
$CUDART_SHA256  $CUDART_WHEEL
$CUPTI_SHA256  $CUPTI_WHEEL
EOF

# Extract with Python's zipfile (no dependency on the `unzip` package). Only members under the
# given prefixes / with the given exact names are written.
extract() { # wheel, dest, then prefixes (ending in /) or exact member names
  python3 - "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, dest, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith('/'):
            continue
        if not any(name.startswith(w) if w.endswith('/') else name == w for w in wanted):
            continue
        out = os.path.join(dest, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"nothing extracted from {wheel}")
print(f"  {os.path.basename(wheel)}: {n} files", file=sys.stderr)
PY
}

echo "Extracting headers and CPU libs..." >&2
extract "$WORK/wheels/$TORCH_WHEEL" "$STAGE" torch/include/ \
  $(printf 'torch/lib/%s ' "${CPU_LIBS[@]}")
rm -f "$WORK/wheels/$TORCH_WHEEL"
extract "$WORK/wheels/$CUDART_WHEEL" "$STAGE" nvidia/cu13/lib/libcudart.so.13
extract "$WORK/wheels/$CUPTI_WHEEL" "$STAGE" nvidia/cu13/lib/libcupti.so.13
rm -rf "$WORK/wheels"

# Sanity check: every CPU lib must resolve all of its dependencies inside the layout (through
# RUNPATH $ORIGIN/...; no LD_LIBRARY_PATH). libtorch.so is skipped: it names libtorch_cuda.so,
# which is deliberately absent here (it is only loaded on GPU machines).
for f in "${CPU_LIBS[@]}"; do
  [[ $f == libtorch.so ]] && continue
  missing="$(env -u LD_LIBRARY_PATH ldd "$STAGE/torch/lib/$f" | grep 'not found' || true)"
  if [[ -n "$missing" ]]; then
    echo "error: $f has unresolved dependencies:" >&2; echo "$missing" >&2; exit 1
  fi
done

echo "$MARKER_TEXT" > "$STAGE/.tunebridge-libtorch-installed"
rm -rf "$DIR"
mv "$STAGE" "$DIR"
echo "Installed libtorch ${TORCH_VERSION} into $DIR" >&2
print_env
