#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (from the PyPI wheel) that `sculpt verify` uses to run the sparse ONNX
# export, and prints where it is. Idempotent.
set -euo pipefail
if ! python3 -c "import onnxruntime" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnxruntime==1.32.0"
fi
python3 -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"
