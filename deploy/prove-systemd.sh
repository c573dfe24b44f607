#!/usr/bin/env bash
# Prove the systemd deployment on a real systemd: boot a fresh Debian bookworm (amd64) with
# systemd-nspawn, run systemd/install.sh inside it as a Pi owner would, and check that
#   - the unit is active, runs as a transient user and answers /classify on 127.0.0.1
#     (grace_hopper.jpg -> "military uniform"; the container shares the host network)
#   - the running service has the unit's open-file limit (LimitNOFILE), not systemd's 1,024
#   - systemd restarts it after `kill -9` of the service process
#   - its exposure score from inside (`systemd-analyze security`) is at most MAX_EXPOSURE
#   - classes taught over HTTP are in the unit's StateDirectory, owned by its transient user,
#     and served again after the kill -9 and after an upgrade; --uninstall keeps them
#   - a second install.sh run upgrades in place, and --uninstall removes it.
# Hardening (seccomp, namespaces, cgroups) is enforced here as on a Pi: the rootfs is native.
#   deploy/prove-systemd.sh        (root; needs debootstrap and systemd-container)
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/.." && pwd)
models=$(cd "${MODELS_FROM:-$src/../shared/models}" && pwd)
images=$(cd "${IMAGES_DIR:-$src/../shared/images}" && pwd)
max_exposure=${MAX_EXPOSURE:-1.5}
started=$SECONDS

pristine=$("$src/deploy/nspawn-rootfs.sh")
wheels=$CACHE/wheels-x86_64
"$src/deploy/wheelhouse.sh" "$wheels" x86_64 >"$CACHE/wheelhouse-x86_64.log" 2>&1 ||
    { tail -20 "$CACHE/wheelhouse-x86_64.log" >&2; die "wheelhouse download failed"; }

run=$(mktemp -d /var/tmp/edge-systemd.XXXXXX)
machine=$run/rootfs
nspawn_pid=''
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        inside systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 1 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        kill "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    rm -rf "$run"
}
trap cleanup EXIT
# An interrupted run still stops what it started (through the EXIT trap).
trap 'exit 130' INT TERM
# A clean login environment inside the machine: the host's PIP_*/PATH settings stay out.
inside() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

log "copying the pristine rootfs"
cp -a "$pristine" "$machine"
# The owner's settings, written before the install (install.sh must keep them): a free port,
# since the machine shares the host's network.
port=$(free_port)
mkdir -p "$machine/etc/edge-server"
sed "s/^EDGE_PORT=.*/EDGE_PORT=$port/" "$src/systemd/edge-server.env" >"$machine/etc/edge-server/edge-server.env"
# An API key, so that classes can be taught (and every request needs it).
key=systemd-proof-key-$$-0123456789
echo "EDGE_API_KEY=$key" >>"$machine/etc/edge-server/edge-server.env"
printf '%s\n' "$key" >"$run/api-key"

log "booting it with systemd-nspawn"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$machine" --boot --register=no --keep-unit \
    --machine="edge-proof-$$" --system-call-filter=bpf --console=pipe \
    --bind-ro="$src:/srv/edge-server" --bind-ro="$wheels:/srv/wheels" \
    --bind-ro="$models:/srv/models" --bind-ro="$images:/srv/images" \
    >"$run/console.log" 2>&1 </dev/null &
nspawn_pid=$!
leader=''
for _ in $(seq 1 60); do
    leader=$(ps --ppid "$nspawn_pid" -o pid= | tr -d ' ' || true)
    if [ -n "$leader" ]; then
        state=$(inside systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded) break ;; esac
    fi
    sleep 0.5
done
[ -n "$leader" ] || { cat "$run/console.log" >&2; die "the machine did not boot"; }
log "booted (system $state, init pid $leader)"

log "install.sh (first install, offline: wheelhouse and model folder)"
t=$SECONDS
inside /srv/edge-server/systemd/install.sh --wheels /srv/wheels --models-from /srv/models
log "installed in $((SECONDS - t)) s"
grep -q "^EDGE_PORT=$port$" "$machine/etc/edge-server/edge-server.env" ||
    die "install.sh replaced the owner's settings"

url=http://127.0.0.1:$port
photo=$images/grace_hopper.jpg
check_service() {
    python3 "$src/deploy/probe.py" "$url" "$photo" "military uniform" --timeout 60 \
        --api-key-file "$run/api-key"
    [ "$(inside systemctl is-active edge-server.service)" = active ] || die "edge-server not active"
}
check_service
main_pid=$(inside systemctl show -p MainPID --value edge-server.service)
uid=$(inside cat "/proc/$main_pid/status" | awk '/^Uid:/{print $2}')
[ "$uid" -ne 0 ] || die "the service runs as root"
rss=$(inside cat "/proc/$main_pid/status" | awk '/^VmRSS:/{print int($2 / 1024)}')
log "active, pid $main_pid, uid $uid (a transient user), RSS $rss MiB" \
    "(MemoryMax=$(inside systemctl show -p MemoryMax --value edge-server.service))"
# The open-file limit the running process really has (systemd's default soft limit is 1,024).
nofile=$(inside cat "/proc/$main_pid/limits" | awk '/^Max open files/{print $4 ":" $5}')
[ "$nofile" = "8192:8192" ] || die "the service's open-file limit is $nofile, not LimitNOFILE=8192"
log "open files: soft:hard $nofile (LimitNOFILE=$(inside systemctl show -p LimitNOFILE --value edge-server.service))"

score=$(inside systemd-analyze security edge-server.service | tail -n 1)
log "from inside: $score"
threshold=$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 + 0.5 }')
inside systemd-analyze security --threshold="$threshold" edge-server.service >/dev/null ||
    die "exposure above $max_exposure"

# learn ARGS...: the installed command line against the running service.
learn() { inside /opt/edge-server/bin/edge-server learn "$@" --url "$url" --api-key "$key"; }
# learned_served: the learned model is listed with both classes, from its file.
learned_served() {
    local listed
    listed=$(learn list) || die "learn list failed"
    case $listed in
        "pets [ready]: cat (1), dog (1);"*) ;;
        *) die "the service lists: $listed" ;;
    esac
}
for class in cat dog; do
    learn add pets "$class" "/srv/images/imprinting/${class}_train_0.bmp" >/dev/null ||
        die "teaching $class failed"
done
learned_served
state_file=$machine/var/lib/private/edge-server/learned/pets.learned
[ -f "$state_file" ] || die "no $state_file: the learned model is not in the StateDirectory"
owner=$(stat -c %u "$state_file")
[ "$owner" = "$uid" ] || die "the learned model belongs to uid $owner, not the service's $uid"
log "taught pets (cat, dog): $state_file, owned by the service's uid $owner"

# The unit's RestartSec: how long systemd waits before it starts the service again.
restart_sec=$(grep -oP '^RestartSec=\K\d+$' "$src/systemd/edge-server.service")
# unit_state: what systemd reports about the service, printed when a wait runs out.
unit_state() {
    inside systemctl show -p ActiveState -p SubState -p MainPID -p NRestarts -p ExecMainStatus \
        -p Result edge-server.service | paste -sd ' ' >&2
    inside journalctl -u edge-server.service -n 10 --no-pager -o cat >&2
}

log "kill -9 $main_pid"
# minbase has no procps: bash's kill builtin, with $1 expanded by that bash.
# shellcheck disable=SC2016
inside bash -c 'kill -9 "$1"' kill "$main_pid"
new_pid=0
until=$((SECONDS + $(with_margin "$restart_sec")))
while [ $SECONDS -lt $until ]; do
    sleep 0.5
    new_pid=$(inside systemctl show -p MainPID --value edge-server.service)
    [ "$new_pid" != 0 ] && [ "$new_pid" != "$main_pid" ] && break
done
if [ "$new_pid" = 0 ] || [ "$new_pid" = "$main_pid" ]; then
    unit_state
    die "systemd did not restart the service within $(with_margin "$restart_sec") s" \
        "(RestartSec=$restart_sec)"
fi
restarts=$(inside systemctl show -p NRestarts --value edge-server.service)
log "restarted by systemd: pid $main_pid -> $new_pid, NRestarts=$restarts"
check_service
learned_served
log "the learned model is served again after the kill -9"

log "a bad setting: the service stops with status 2 and is not restarted in a loop"
settings=$machine/etc/edge-server/edge-server.env
cp "$settings" "$run/settings.good"
echo "EDGE_NUM_THREADS=0" >>"$settings"
inside systemctl restart edge-server.service || true
# It fails once its settings are read (allowed the 60 s check_service allows a start), and is
# not started again: still failed, NRestarts unchanged, after RestartSec with the margin.
restarts=$(inside systemctl show -p NRestarts --value edge-server.service)
until=$((SECONDS + $(with_margin 60)))
state=''
while [ $SECONDS -lt $until ]; do
    state=$(inside systemctl show -p ActiveState --value edge-server.service)
    [ "$state" = failed ] && break
    sleep 0.5
done
[ "$state" = failed ] || { unit_state; die "with a bad setting: still $state after $(with_margin 60) s"; }
sleep "$(with_margin "$restart_sec")"
state=$(inside systemctl show -p ActiveState --value edge-server.service)
status=$(inside systemctl show -p ExecMainStatus --value edge-server.service)
again=$(inside systemctl show -p NRestarts --value edge-server.service)
[ "$state $status" = "failed 2" ] || { unit_state; die "with a bad setting: $state, exit status $status"; }
[ "$again" = "$restarts" ] || { unit_state; die "with a bad setting: restarted ($restarts -> $again)"; }
inside journalctl -u edge-server.service -n 20 --no-pager -o cat | grep -q EDGE_NUM_THREADS ||
    die "the journal does not name the bad setting"
log "failed with status 2, the journal names EDGE_NUM_THREADS"
cp "$run/settings.good" "$settings"

log "install.sh again (upgrade in place; also restarts the failed service)"
inside /srv/edge-server/systemd/install.sh --wheels /srv/wheels --models-from /srv/models
check_service
learned_served

log "install.sh --uninstall"
inside /srv/edge-server/systemd/install.sh --uninstall
[ ! -e "$machine/etc/systemd/system/edge-server.service" ] || die "the unit is still installed"
[ ! -e "$machine/opt/edge-server" ] || die "/opt/edge-server is still there"
[ -f "$machine/etc/edge-server/edge-server.env" ] || die "--uninstall removed the settings"
[ -f "$state_file" ] || die "--uninstall removed the learned classes"
if python3 "$src/deploy/probe.py" "$url" "$photo" "military uniform" --timeout 2 \
    --api-key-file "$run/api-key" 2>/dev/null; then
    die "something still answers on $url"
fi
log "systemd proof passed in $((SECONDS - started)) s"
