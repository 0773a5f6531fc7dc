#!/usr/bin/env bash
# Set up (idempotent) and run the main job: `steport demo` (train, export, verify, report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. "${STEPORT_VENV:-.venv}/bin/activate"
exec steport demo "$@"
