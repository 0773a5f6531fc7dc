#!/usr/bin/env bash
# Build the local base images from Debian packages with debootstrap + `podman import`: no
# registry is needed, only a Debian mirror. One debootstrap gives two tags:
#   TAG-runtime  python3 + venv only          (the runtime stage: small, no compiler)
#   TAG          the same + g++, cmake, make  (the builder stage)
# Cached: does nothing when both tags exist (FORCE=1 rebuilds).
#   deploy/make_base_image.sh [TAG]        (default localhost/steport-base:bookworm)
# Env: STEPORT_DEBIAN_MIRROR (default: this machine's apt source), STEPORT_BASE_SUITE (bookworm).
set -euo pipefail
TAG="${1:-${STEPORT_BASE_TAG:-localhost/steport-base:bookworm}}"
RTAG="$TAG-runtime"
SUITE="${STEPORT_BASE_SUITE:-bookworm}"
say() { echo "[make_base_image] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need_pkgs=()
command -v podman >/dev/null || need_pkgs+=(podman)
command -v buildah >/dev/null || need_pkgs+=(buildah)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need ${need_pkgs[*]} and root to apt-get install them"
  command -v apt-get >/dev/null || die "need ${need_pkgs[*]}; no apt-get on this machine"
  say "installing ${need_pkgs[*]} from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2; } \
    || die "apt-get install ${need_pkgs[*]} failed"
fi

if [ -z "${FORCE:-}" ] && podman image exists "$TAG" 2>/dev/null && podman image exists "$RTAG" 2>/dev/null; then
  say "$TAG and $RTAG exist (cached); FORCE=1 to rebuild"; exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root"

mirror="${STEPORT_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                                | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror: set STEPORT_DEBIAN_MIRROR"

root=$(mktemp -d /var/tmp/steport-rootfs.XXXXXX)
cleanup() {
  for m in proc sys dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
import_tag() {  # rootfs -> image tag
  say "importing into $1"
  tar -C "$root" --numeric-owner --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . \
    | podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$1" >&2 || die "podman import $1 failed"
}
slim() {
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/tmp/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* 2>/dev/null || true
}
t0=$(date +%s)
say "debootstrap $SUITE from $mirror (minbase + python3, python3-venv)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$root" "$mirror" >&2 \
  || die "debootstrap failed (see above)"
echo "deb $mirror $SUITE main" > "$root/etc/apt/sources.list"
slim; import_tag "$RTAG"
say "adding g++, cmake, make for the builder"
mount --bind /proc "$root/proc"
chroot "$root" apt-get update -q >&2 || die "apt-get update in the chroot failed"
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends g++ cmake make >&2 \
  || die "apt-get install g++ cmake make in the chroot failed"
umount -l "$root/proc"
slim; import_tag "$TAG"
say "done in $(( $(date +%s) - t0 ))s: $TAG, $RTAG"
