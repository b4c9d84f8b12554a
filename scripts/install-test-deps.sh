#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (from the PyPI wheel) that `sculpt verify` uses to run the sparse ONNX
# export, and the `onnx` package whose checker tests/onnx_checker.rs runs; prints where ONNX Runtime is.
# Idempotent.
set -euo pipefail
if ! python3 -c "import onnxruntime" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnxruntime==1.32.0"
fi
if ! python3 -c "import onnx" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnx==1.23.2"
fi
python3 -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"
