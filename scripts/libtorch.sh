#!/usr/bin/env bash
# Runs a command with the libtorch that sculpt's `tch` feature builds against (torch 2.11.0, the PyPI wheel),
# installing it first when needed:
#
#     scripts/libtorch.sh cargo build --release --features tch
#     scripts/libtorch.sh cargo test --features tch --test network_conformance
#     scripts/libtorch.sh target/release/sculpt train --device tch-cpu
#
# Without a command it prints the settings as shell `export` lines (`eval "$(scripts/libtorch.sh)"`).
#
# The wheel is installed without its CUDA dependencies (several GB): only the CUDA runtime and CUPTI wheels that
# libtorch_cpu.so itself loads (13 MB) come with it, and sculpt links libtorch_cpu alone, so the result builds and
# runs on machines without a GPU. On a GPU machine with a complete torch 2.11 install, sculpt loads libtorch's
# CUDA half at run time from the same directory (put its torch/lib on LD_LIBRARY_PATH).
#
# Idempotent; the venv lives in $SCULPT_LIBTORCH_VENV (default ~/.cache/sculpt-libtorch), and pip's cache keeps
# the downloaded wheels. Progress goes to stderr.
set -euo pipefail

TORCH_VERSION=2.11.0
CUDA_WHEELS=("nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85")
venv="${SCULPT_LIBTORCH_VENV:-$HOME/.cache/sculpt-libtorch}"

torch_dir() {
  "$venv/bin/python" - <<'EOF' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("torch")
print(os.path.dirname(spec.origin) if spec else "")
EOF
}

installed_version() {
  local dir="$1"
  [[ -f "$dir/version.py" ]] || return 0
  sed -n "s/^__version__ = '\([0-9.]*\).*'$/\1/p" "$dir/version.py"
}

if [[ ! -x "$venv/bin/python" ]]; then
  echo "libtorch: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
torch="$(torch_dir)"
if [[ -z "$torch" || "$(installed_version "$torch")" != "$TORCH_VERSION" ]]; then
  echo "libtorch: installing torch==$TORCH_VERSION (no CUDA wheels) into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "torch==$TORCH_VERSION" "${CUDA_WHEELS[@]}" >&2
  torch="$(torch_dir)"
fi
[[ -n "$torch" && -f "$torch/lib/libtorch_cpu.so" ]] || { echo "libtorch: no torch/lib in $venv" >&2; exit 1; }

# The link directory: libtorch_cpu and c10 only (libtorch.so would pull in libtorch_cuda and its CUDA libraries).
link="$venv/link/lib"
mkdir -p "$link"
ln -sfn "$torch/lib/libtorch_cpu.so" "$link/libtorch_cpu.so"
ln -sfn "$torch/lib/libtorch_cpu.so" "$link/libtorch.so"
ln -sfn "$torch/lib/libc10.so" "$link/libc10.so"
ln -sfn "$torch/lib/libgomp.so.1" "$link/libgomp.so"

unset LIBTORCH_USE_PYTORCH
export LIBTORCH="$torch"
export LIBTORCH_LIB="$venv/link"
export LD_LIBRARY_PATH="$torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [[ $# -eq 0 ]]; then
  printf 'export LIBTORCH=%q\nexport LIBTORCH_LIB=%q\nexport LD_LIBRARY_PATH=%q\n' \
    "$LIBTORCH" "$LIBTORCH_LIB" "$LD_LIBRARY_PATH"
else
  exec "$@"
fi
