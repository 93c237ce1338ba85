# Source this file (`source .ci/libtorch-env.sh`) to build/run with the libtorch installed by
# .ci/install-libtorch.sh. Honours TUNEBRIDGE_LIBTORCH_DIR like the installer does.
# Safe to source more than once (LD_LIBRARY_PATH is not extended twice).
_tb_libtorch_dir="${TUNEBRIDGE_LIBTORCH_DIR:-$HOME/.cache/tunebridge/libtorch-2.11.0}"
if [ ! -f "$_tb_libtorch_dir/.tunebridge-libtorch-installed" ]; then
  echo "libtorch-env.sh: no libtorch in $_tb_libtorch_dir; run .ci/install-libtorch.sh first" >&2
fi
export LIBTORCH="$_tb_libtorch_dir/torch"
export LIBTORCH_CXX11_ABI=1
_tb_ld="$_tb_libtorch_dir/torch/lib:$_tb_libtorch_dir/nvidia/cu13/lib"
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_tb_ld:"*) ;;
  *) export LD_LIBRARY_PATH="$_tb_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
unset _tb_libtorch_dir _tb_ld
