#!/usr/bin/env bash
# Idempotent set-up: .venv with pinned torch (CPU build), steport built and installed with
# its train/test extras, ORT headers fetched by ort_ops/scripts/get_ort_headers.sh.
# Re-running is cheap: pip skips what is installed; CMake rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${STEPORT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
python -m pip install -q --upgrade "pip>=24" >/dev/null
# torch first, pinned: this version is the CPU build that lies on disk; anything wider
# would pull a multi-GB CUDA build.
python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || python -m pip install -q "torch==2.13.0"
# Build requirements installed once, then build without isolation (offline-friendly,
# reuses the CMake build dir under build/).
python -m pip install -q "scikit-build-core==1.1.2"
python -m pip install -q --no-build-isolation ".[test]"
python - <<'PY'
import steport, steport.ort_ops as o
print(f"steport {steport.__version__}: {o.library_path()} {o.build_info()}")
PY
