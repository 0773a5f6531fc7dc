#!/usr/bin/env bash
# Build libsteport_ops with AddressSanitizer + UBSan and run the op test-suites against it
# (the ASan runtime is LD_PRELOADed into Python). Any sanitizer report fails the run.
# Usage: bash scripts/sanitize.sh [pytest args]   (after scripts/bootstrap.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. "${STEPORT_VENV:-.venv}/bin/activate"
BUILD=build/sanitize
cmake -S ort_ops -B "$BUILD" -DSTEPORT_SANITIZE=ON -DSTEPORT_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
LIB="$(pwd)/$BUILD/libsteport_ops.so"
ASAN_RT="$(g++ -print-file-name=libasan.so)"
UBSAN_RT="$(g++ -print-file-name=libubsan.so)"
LOG_DIR="$(mktemp -d)"
# Python's own allocations are not ours to judge: no leak checking; any error aborts.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$LOG_DIR/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOG_DIR/ubsan"
export STEPORT_OPS_LIBRARY="$LIB"
tests=()
for d in tests/quant tests/binary tests/approx tests/logic tests/fuzz; do
  [ -d "$d" ] && tests+=("$d")
done
# the hostile-model suite and the attribute/registry regressions (tests/hostile), not its
# CLI tests (PyTorch export in subprocesses: nothing of the op library's own)
for f in tests/hostile/test_hostile.py tests/hostile/test_findings.py; do
  [ -f "$f" ] && tests+=("$f")
done
echo "sanitizer run: $LIB on ${tests[*]}"
set +e
LD_PRELOAD="$ASAN_RT $UBSAN_RT" python -m pytest -q -p no:cacheprovider -m "not slow" "${tests[@]}" "$@"
rc=$?
set -e
reports=$(ls "$LOG_DIR" 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
  echo "sanitizer reports:"; cat "$LOG_DIR"/*; rc=1
fi
echo "sanitizer reports: $reports"
exit $rc
