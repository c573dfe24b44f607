#!/usr/bin/env bash
# Install edge-server as a systemd service, or upgrade an installed one in place (run it again),
# on Debian bookworm / Raspberry Pi OS with python3-venv. From a checkout of this repository:
#   sudo systemd/install.sh [--wheels DIR] [--models-from DIR_OR_URL]
#   sudo systemd/install.sh --uninstall [--purge]
# --wheels DIR        install from a wheelhouse only, no index (deploy/wheelhouse.sh makes one)
# --models-from SRC   copy the model from a folder (USB stick) or a base URL instead of the
#                     official URL; the catalog's sha256 is checked either way
# --uninstall         stop and remove the service and /opt/edge-server; --purge also removes
#                     the settings in /etc/edge-server and the learned classes in
#                     /var/lib/edge-server
set -euo pipefail

PREFIX=/opt/edge-server
CONF=/etc/edge-server
UNIT=/etc/systemd/system/edge-server.service
SRC=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}

wheels='' models_from='' uninstall='' purge=''
while [ $# -gt 0 ]; do
    case $1 in
        --wheels) wheels=$(cd "$2" && pwd); shift 2 ;;
        --models-from) models_from=$2; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
# The service runs as a transient user that must read everything installed here.
umask 022

if [ -n "$uninstall" ]; then
    if [ -f "$UNIT" ]; then
        systemctl disable --now edge-server.service
        rm -f "$UNIT"
        systemctl daemon-reload
    fi
    rm -rf "$PREFIX"
    # DynamicUser keeps the StateDirectory under /var/lib/private, behind a symlink.
    [ -n "$purge" ] && rm -rf "$CONF" /var/lib/edge-server /var/lib/private/edge-server
    echo "edge-server removed${purge:+ with its settings and learned classes}${purge:-; settings kept in $CONF, learned classes in /var/lib/edge-server}"
    exit 0
fi

"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || {
    echo "install.sh: needs Python >= 3.10 with venv: sudo apt install python3-venv" >&2
    exit 1
}

# Settings first, so the model pulled below is the one they name. An existing file is the
# owner's: only the example beside it is refreshed.
install -d -m 0755 "$CONF"
install -m 0644 "$SRC/systemd/edge-server.env" "$CONF/edge-server.env.example"
[ -f "$CONF/edge-server.env" ] || install -m 0600 "$SRC/systemd/edge-server.env" "$CONF/edge-server.env"
model=$(sed -n 's/^EDGE_MODEL=["'\'']\{0,1\}\([^"'\'']*\).*/\1/p' "$CONF/edge-server.env" | tail -n 1)

# The venv is reused on upgrade: pip always rebuilds and replaces a package given as a folder,
# and --upgrade replaces any dependency that changed.
[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
pip_options=(--quiet --disable-pip-version-check --no-cache-dir)
[ -n "$wheels" ] && pip_options+=(--no-index --find-links "$wheels")
"$PREFIX/bin/pip" install "${pip_options[@]}" --upgrade "${SRC}[mqtt]"

case $model in
    */* | *.tflite) echo "EDGE_MODEL is the file $model: nothing to pull" ;;
    *) "$PREFIX/bin/edge-server" models pull ${model:+"$model"} --models-dir "$PREFIX/models" \
        ${models_from:+--from "$models_from"} ;;
esac
# The embedding model learned classes are built on; without it the service still serves, and
# teaching answers 503 saying how to pull it.
"$PREFIX/bin/edge-server" models pull embedder --models-dir "$PREFIX/models" \
    ${models_from:+--from "$models_from"} ||
    echo "install.sh: no embedding model pulled; learned classes wait for it"

install -m 0644 "$SRC/systemd/edge-server.service" "$UNIT"
systemctl daemon-reload
systemctl enable edge-server.service
# restart: starts a stopped service, and an upgraded one picks up the new code and unit.
systemctl restart edge-server.service
sleep 2
if ! systemctl is-active --quiet edge-server.service; then
    journalctl -u edge-server.service -n 30 --no-pager >&2 || true
    echo "install.sh: edge-server did not stay up; fix $CONF/edge-server.env and run again" >&2
    exit 1
fi
echo "edge-server $("$PREFIX/bin/edge-server" --version | cut -d' ' -f2) installed and running;" \
    "settings in $CONF/edge-server.env, logs: journalctl -u edge-server"
