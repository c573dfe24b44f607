#!/usr/bin/env bash
# Print the path of a pristine Debian bookworm amd64 rootfs with systemd as init and the Python
# a Pi owner has (python3, python3-venv), building it with debootstrap the first time (~1-2 min).
#   deploy/nspawn-rootfs.sh
# Callers boot a copy, never this tree, so every run starts from a fresh system.
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
rootfs=$CACHE/rootfs-bookworm-amd64
if [ ! -x "$rootfs/lib/systemd/systemd" ]; then
    log "debootstrap amd64 bookworm into $rootfs"
    rm -rf "$rootfs.partial"
    mirror=$(apt_mirror)
    debootstrap --arch=amd64 --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv \
        bookworm "$rootfs.partial" ${mirror:+"$mirror"} >"$CACHE/debootstrap-amd64.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap-amd64.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs.partial"/var/cache/apt/archives/*.deb
    rm -rf "$rootfs"
    mv "$rootfs.partial" "$rootfs"
fi
echo "$rootfs"
