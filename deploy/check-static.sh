#!/usr/bin/env bash
# Static checks of the deployment files, fast enough for every CI run:
#   - hadolint on Dockerfile.arm64 (fails on warnings)
#   - shellcheck on the deploy and install scripts
#   - `systemd-analyze verify` prints nothing for the unit
#   - `systemd-analyze security --offline=yes` scores the unit at MAX_EXPOSURE (1.5) or below
# Each check is first run on a deliberately bad input, which must fail: a check that
# cannot fail proves nothing.
#   deploy/check-static.sh      (needs hadolint, shellcheck, systemd-analyze: make deploy-check)
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
max_exposure=${MAX_EXPOSURE:-1.5}
unit=systemd/edge-server.service

log "hadolint $(hadolint --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')"
if printf 'FROM --platform=linux/arm64 debian\n' | hadolint --failure-threshold warning - \
    >/dev/null; then die "hadolint accepted FROM --platform"; fi
hadolint --failure-threshold warning Dockerfile.arm64
# A `# syntax=` line makes BuildKit pull a frontend image from a registry: none offline.
if grep -qiE '^#[[:space:]]*syntax[[:space:]]*=' Dockerfile.arm64; then
    die "Dockerfile.arm64 has a # syntax= line"
fi

log "shellcheck"
shellcheck -x deploy/*.sh systemd/install.sh .ci/run

# `verify` needs a root holding systemd's own units and the unit's ExecStart binary (a stub
# here); it exits 0 even for misspelt keys, so any output at all is a failure.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/etc/systemd/system" "$work/root/lib/systemd"
cp -a /lib/systemd/system "$work/root/lib/systemd/"
exe=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | head -n 1)
mkdir -p "$work/root$(dirname "$exe")"
printf '#!/bin/sh\nexit 0\n' >"$work/root$exe"
chmod 755 "$work/root$exe"

verify() {
    cp "$1" "$work/root/etc/systemd/system/edge-server.service"
    out=$(systemd-analyze verify --root="$work/root" edge-server.service 2>&1) || true
    [ -z "$out" ] || { printf '%s\n' "$out" >&2; return 1; }
}
# systemd-analyze compares with --threshold in tenths.
secure() {
    local threshold
    threshold=$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 + 0.5 }')
    cp "$1" "$work/root/etc/systemd/system/edge-server.service"
    systemd-analyze security --offline=yes --root="$work/root" --threshold="$threshold" \
        edge-server.service >"$work/security.txt" 2>&1
}

sed 's/^Restart=/Restrat=/' "$unit" >"$work/misspelt.service"
if verify "$work/misspelt.service" 2>/dev/null; then die "verify accepted a misspelt key"; fi
log "systemd-analyze verify $unit"
verify "$unit" || die "systemd-analyze verify printed the above for $unit"

grep -vE '^(ProtectSystem|CapabilityBoundingSet|SystemCallFilter)=' "$unit" >"$work/weaker.service"
if secure "$work/weaker.service"; then die "a unit without core hardening passed the score"; fi
log "systemd-analyze security --offline=yes $unit (at most $max_exposure)"
if ! secure "$unit"; then
    grep -v '✓' "$work/security.txt" >&2
    die "exposure above $max_exposure"
fi
grep -v '✓' "$work/security.txt"
log "static checks passed"
