#!/usr/bin/env bash
# Fill wheelhouse/ on the host so the image builds offline (the Dockerfile installs with
# --no-index from it): the runtime wheels (numpy, onnx, onnxruntime and their deps; kserve
# and its deps for the `kserve` target), the
# build backend (scikit-build-core) and the ORT C/C++ headers (wheelhouse/ort-include) for
# compiling ort_ops in the builder stage. Re-running is cheap (pip reuses its cache).
#   deploy/build_wheelhouse.sh [OUT]     (default: wheelhouse/ at the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-wheelhouse}"
PY="${PYTHON:-python3}"
# The image's Python is Debian bookworm's 3.11: fetch wheels for it whatever runs this.
PYVER="${STEPORT_IMAGE_PYVER:-3.11}"
mkdir -p "$OUT"
say() { echo "[build_wheelhouse] $*" >&2; }

# Runtime pins come from pyproject.toml's [project] dependencies (one source of truth), plus
# the kserve extra for the image's `kserve` target (Dockerfile): resolved together, so both
# targets install the same versions of what they share.
mapfile -t deps < <("$PY" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["kserve"]))
PY
)
build_req=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["build-system"]["requires"][0])')
say "runtime: ${deps[*]}; build: $build_req; python $PYVER"
"$PY" -m pip download -q --dest "$OUT" --only-binary=:all: --python-version "$PYVER" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_28_x86_64 --platform linux_x86_64 --implementation cp \
  "${deps[@]}" "$build_req" >&2

hdr=$(bash ort_ops/scripts/get_ort_headers.sh)
rm -rf "$OUT/ort-include"
mkdir -p "$OUT/ort-include"
cp -r "$hdr"/. "$OUT/ort-include/"
[ -f "$OUT/ort-include/onnxruntime_cxx_api.h" ] || { say "ERROR: no ORT headers copied from $hdr"; exit 1; }
say "wheelhouse ready: $(ls "$OUT"/*.whl | wc -l) wheels, ORT headers from $hdr"
