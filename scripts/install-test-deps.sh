#!/usr/bin/env bash
# Installs what the tests need and prints where the ONNX Runtime shared library is (the only line on
# stdout). Idempotent and quiet:
# - the ONNX Runtime shared library (from the PyPI wheel) that `sculpt verify` uses for the sparse ONNX export;
# - the Arm cross toolchains and QEMU that `sculpt verify --on-target` builds and runs the C and the no_std
#   runtime with (Debian packages; skipped with a note on stderr where apt-get is unavailable);
# - the Rust targets of the no_std runtime on the Cortex-M boards (skipped with a note where rustup is not);
# - Open MPI and libclang for the `mpi` feature;
# - the `onnx` package whose checker tests/onnx_checker.rs runs.
set -euo pipefail
debs=(gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm qemu-user
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install-test-deps: no apt-get; the on-target checks will be skipped (${missing[*]} missing)" >&2
  fi
fi
if command -v rustup >/dev/null; then
  for t in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t" >/dev/null 2>&1 \
      || echo "install-test-deps: cannot add the Rust target $t; the no_std runtime rows will be skipped" >&2
  done
fi
# Open MPI and libclang for the `mpi` feature: rsmpi's build (bindgen, mpicc) and its test (`mpirun`).
if ! dpkg -s libopenmpi-dev openmpi-bin libclang-dev >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libopenmpi-dev openmpi-bin libclang-dev) >&2
  else
    echo "install-test-deps: install Open MPI (libopenmpi-dev, openmpi-bin) and libclang-dev" >&2
  fi
fi
if ! python3 -c "import onnxruntime" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnxruntime==1.32.0"
fi
if ! python3 -c "import onnx" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnx==1.23.2"
fi
python3 -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"
