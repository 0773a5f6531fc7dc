#!/usr/bin/env bash
# Print a directory that holds onnxruntime_cxx_api.h (and friends), obtaining it if needed.
# Order: $STEPORT_ORT_INCLUDE_DIR (user-supplied) -> system install -> cached Debian
# libonnxruntime-dev (suite trixie) fetched with a *scoped* apt-get download + dpkg -x.
# The mirror URI is taken from this machine's own Debian sources; none is hard-coded.
set -euo pipefail
SUITE="${STEPORT_ORT_DEB_SUITE:-trixie}"
CACHE="${STEPORT_ORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steport/ort-headers}"

has_headers() { [ -f "$1/onnxruntime_cxx_api.h" ] && [ -f "$1/onnxruntime_c_api.h" ]; }

if [ -n "${STEPORT_ORT_INCLUDE_DIR:-}" ]; then
  if has_headers "$STEPORT_ORT_INCLUDE_DIR"; then echo "$STEPORT_ORT_INCLUDE_DIR"; exit 0; fi
  echo "STEPORT_ORT_INCLUDE_DIR=$STEPORT_ORT_INCLUDE_DIR has no onnxruntime_cxx_api.h" >&2; exit 1
fi
for d in /usr/include/onnxruntime /usr/local/include/onnxruntime /usr/include /usr/local/include \
         /usr/include/onnxruntime/core/session; do
  if has_headers "$d"; then echo "$d"; exit 0; fi
done
found=$(find "$CACHE" -name onnxruntime_cxx_api.h -print -quit 2>/dev/null || true)
if [ -n "$found" ]; then dirname "$found"; exit 0; fi

command -v apt-get >/dev/null || { echo "no ORT headers found and no apt-get: set STEPORT_ORT_INCLUDE_DIR" >&2; exit 1; }
# Mirror URI from the machine's own sources (deb822 'URIs:' or one-line 'deb URI suite').
uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                         | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$uri" ] || { echo "no Debian mirror in this machine's apt sources: set STEPORT_ORT_INCLUDE_DIR" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$CACHE"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opt=""; [ -f "$keyring" ] && opt="[signed-by=$keyring]"
echo "deb $opt $uri $SUITE main" > "$work/sources.list"
APT=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives"
     -o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0)
apt-get "${APT[@]}" update >&2
( cd "$work" && apt-get "${APT[@]}" download libonnxruntime-dev >&2 )
deb=$(ls "$work"/libonnxruntime-dev_*.deb | head -n1)
dpkg -x "$deb" "$CACHE"
found=$(find "$CACHE" -name onnxruntime_cxx_api.h -print -quit)
[ -n "$found" ] || { echo "libonnxruntime-dev unpacked but has no onnxruntime_cxx_api.h" >&2; exit 1; }
dirname "$found"
