#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (from the PyPI wheel) that `sculpt verify` uses to run the sparse ONNX
# export, and the `onnx` package whose checker tests/onnx_checker.rs runs; prints where ONNX Runtime is.
# Idempotent.
set -euo pipefail
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
