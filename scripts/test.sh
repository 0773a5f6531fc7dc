#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. "${STEPORT_VENV:-.venv}/bin/activate"
exec python -m pytest -q -p no:cacheprovider "$@"
