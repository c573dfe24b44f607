#!/usr/bin/env bash
# Load a local arm64 Debian bookworm base image (python3 + venv) into the running daemon
# ($DOCKER_HOST) as edge-base:bookworm-arm64, without any container registry.
#   deploy/base-image.sh
# debootstrap under qemu takes ~5 min once; the rootfs tarball is cached. `docker import
# --platform linux/arm64` is ignored by dockerd 20.10 (the image comes out amd64), so the image
# is assembled as OCI with umoci and copied into the daemon with skopeo.
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
image=edge-base:bookworm-arm64

if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image already loaded"
    exit 0
fi
tarball=$CACHE/bookworm-arm64-python.tar
if [ ! -f "$tarball" ]; then
    log "debootstrap arm64 bookworm (qemu; several minutes)"
    rootfs=$CACHE/rootfs-arm64.partial
    rm -rf "$rootfs"
    mirror=$(apt_mirror)
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv \
        bookworm "$rootfs" ${mirror:+"$mirror"} >"$CACHE/debootstrap-arm64.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap-arm64.log" >&2; die "debootstrap failed"; }
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
umoci config --image "$oci/layout:bookworm" --architecture arm64 --os linux \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd /bin/bash
skopeo copy --quiet "oci:$oci/layout:bookworm" "docker-daemon:$image" \
    --dest-daemon-host "$DOCKER_HOST"
platform=$(docker image inspect "$image" --format '{{.Os}}/{{.Architecture}}')
[ "$platform" = linux/arm64 ] || die "$image is $platform, not linux/arm64"
log "$image loaded ($platform)"
