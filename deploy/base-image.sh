#!/usr/bin/env bash
# Load a local Debian bookworm base image (python3 + venv) into the running daemon ($DOCKER_HOST)
# as edge-base:bookworm-ARCH, without any container registry.
#   deploy/base-image.sh [arm64|amd64]      (default arm64)
# debootstrap takes ~5 min once under qemu (arm64), less natively (amd64); the rootfs tarball is
# cached. `docker import --platform linux/arm64` is ignored by dockerd 20.10 (the image comes out
# amd64), so the image is assembled as OCI with umoci and copied into the daemon with skopeo.
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
arch=${1:-arm64}
case "$arch" in arm64 | amd64) ;; *) die "unknown architecture $arch (arm64 or amd64)" ;; esac
image=edge-base:bookworm-$arch

if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image already loaded"
    exit 0
fi
tarball=$CACHE/bookworm-$arch-python.tar
if [ ! -f "$tarball" ]; then
    log "debootstrap $arch bookworm (several minutes under qemu)"
    rootfs=$CACHE/rootfs-$arch.partial
    rm -rf "$rootfs"
    mirror=$(apt_mirror)
    debootstrap --arch="$arch" --variant=minbase --include=python3,python3-venv \
        bookworm "$rootfs" ${mirror:+"$mirror"} >"$CACHE/debootstrap-$arch.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap-$arch.log" >&2; die "debootstrap failed"; }
    # No package caches in the base: they would be in every image built on it.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
fi
oci=$(mktemp -d)
trap 'rm -rf "$oci"' EXIT
umoci init --layout "$oci/layout"
umoci new --image "$oci/layout:bookworm"
umoci raw add-layer --image "$oci/layout:bookworm" "$tarball"
umoci config --image "$oci/layout:bookworm" --architecture "$arch" --os linux \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd /bin/bash
skopeo copy --quiet "oci:$oci/layout:bookworm" "docker-daemon:$image" \
    --dest-daemon-host "$DOCKER_HOST"
platform=$(docker image inspect "$image" --format '{{.Os}}/{{.Architecture}}')
[ "$platform" = "linux/$arch" ] || die "$image is $platform, not linux/$arch"
log "$image loaded ($platform)"
