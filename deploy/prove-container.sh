#!/usr/bin/env bash
# Prove the arm64 image on this x86_64 machine under qemu user emulation:
#   - build Dockerfile.arm64 for linux/arm64 offline (--network none, wheelhouse, no index) on a
#     local arm64 Debian bookworm base, so no registry is needed
#   - run it with a read-only root filesystem as its non-root user: /readyz 200, HEALTHCHECK
#     healthy, grace_hopper.jpg -> "military uniform" by the baked-in default model
#   - select a model from a mounted folder with EDGE_* settings
#   - `docker stop` (SIGTERM) ends it with status 0 within seconds
#   - learned classes taught in one container are served by a new one on the same volume
# The containers have no network; requests go to 127.0.0.1 inside them via `docker exec`.
# qemu passes the host's x86 /proc/cpuinfo through and LiteRT crashes parsing it, so a Pi 4's
# is mounted over it here; the image itself is unchanged and needs nothing of the kind on a Pi.
#   deploy/prove-container.sh      (root; needs qemu-user-static binfmt, docker.io, debootstrap,
#                                   umoci, skopeo: make deploy-tools)
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/.." && pwd)
models=$(cd "${MODELS_FROM:-$src/../shared/models}" && pwd)
images=$(cd "${IMAGES_DIR:-$src/../shared/images}" && pwd)
image=${IMAGE:-edge-server:arm64}
started=$SECONDS

grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
    die "qemu-aarch64 binfmt is not enabled (make deploy-tools)"

run=$(mktemp -d /var/tmp/edge-container.XXXXXX)
containers=()
volumes=()
cleanup() {
    for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    for v in "${volumes[@]}"; do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
    stop_dockerd
    rm -rf "$run"
}
trap cleanup EXIT
# An interrupted run still stops what it started (through the EXIT trap).
trap 'exit 130' INT TERM
start_dockerd "$run"
log "dockerd $(docker version --format '{{.Server.Version}}') on $DOCKER_HOST (pid $DOCKERD_PID)"

"$src/deploy/base-image.sh"

default_model=$(catalog_default "$src")
t=$SECONDS
build_image arm64 "$image" "$run/build.log"
size=$(docker image inspect "$image" --format '{{.Size}}')
base_size=$(docker image inspect edge-base:bookworm-arm64 --format '{{.Size}}')
log "built $image in $((SECONDS - t)) s: $(docker image inspect "$image" --format '{{.Os}}/{{.Architecture}}')," \
    "$((size / 1000000)) MB, of which the base $((base_size / 1000000)) MB" \
    "and edge-server (venv + model) $(((size - base_size) / 1000000)) MB"

# start NAME [docker run options...]: a read-only, networkless container of the image.
start() {
    local name=$1
    shift
    containers+=("$name")
    docker run -d --name "$name" --read-only --tmpfs /tmp --network none \
        --health-interval 5s \
        -v "$src/deploy/pi4-cpuinfo.txt:/proc/cpuinfo:ro" \
        -v "$src/deploy/probe.py:/probe/probe.py:ro" -v "$images:/images:ro" \
        "$@" "$image" >/dev/null
}
probe() {
    local name=$1
    shift
    docker exec "$name" python3 /probe/probe.py http://127.0.0.1:8080 "$@" --timeout 240 ||
        { docker logs "$name" 2>&1 | tail -30 >&2; die "$name failed the probe"; }
}

c=edge-proof-$$
log "docker run --read-only (baked-in model)"
t=$SECONDS
start "$c"
probe "$c" /images/grace_hopper.jpg "military uniform" --model "$default_model"
log "ready and classifying $((SECONDS - t)) s after docker run"

user=$(docker inspect "$c" --format '{{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}}')
uid=$(docker exec "$c" python3 -c 'import os; print(os.getuid())')
pid1_uid=$(docker exec "$c" awk '/^Uid:/{print $2}' /proc/1/status)
arch=$(docker exec "$c" uname -m)
# docker top needs the pid column to pick the container's processes out of ps.
servers=$(docker top "$c" -eo pid,args | grep -c 'edge-server serve' || true)
if [ "$uid" = 0 ] || [ "$pid1_uid" = 0 ]; then die "the service runs as root"; fi
[ "$servers" = 1 ] || die "$servers edge-server processes, expected one"
[ "$arch" = aarch64 ] || die "not an aarch64 container"
if docker exec "$c" python3 -c 'open("/opt/edge-server/written", "w")' 2>/dev/null; then
    die "the root filesystem is writable"
fi
log "user $user; exec uid $uid, PID 1 uid $pid1_uid; $arch; $servers server process;" \
    "writes to / refused"

# Docker's verdict comes at the latest start period + (retries + 1) x (interval + timeout) after
# the start, from the container's own health check settings.
verdict=$(docker inspect "$c" --format '{{json .Config.Healthcheck}}' | python3 -c 'import json, math, sys
h = json.load(sys.stdin)
def s(k, default): return h.get(k, default * 1e9) / 1e9
print(math.ceil(s("StartPeriod", 0) + (h.get("Retries", 3) + 1) * (s("Interval", 30) + s("Timeout", 30))))')
until=$((SECONDS + $(with_margin "$verdict")))
while :; do
    health=$(docker inspect "$c" --format '{{.State.Health.Status}}')
    if [ "$health" != starting ] || [ $SECONDS -ge $until ]; then break; fi
    sleep 2
done
if [ "$health" != healthy ]; then
    docker inspect "$c" --format '{{json .State.Health}}' >&2
    die "HEALTHCHECK says $health (verdict due within $verdict s, waited $(with_margin "$verdict") s)"
fi
log "HEALTHCHECK: $health (its verdict due within $verdict s)"

log "docker stop (SIGTERM)"
t=$(date +%s.%N)
docker stop -t 30 "$c" >/dev/null
stopped=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
code=$(docker inspect "$c" --format '{{.State.ExitCode}} oomkilled={{.State.OOMKilled}}')
log "stopped in $stopped s, exit status $code"
[ "${code%% *}" = 0 ] || die "exit status $code after SIGTERM"
awk -v s="$stopped" 'BEGIN { exit !(s < 10) }' || die "SIGTERM took $stopped s"
docker logs "$c" 2>&1 | grep -q "Finished server process" || die "no graceful shutdown in the logs"

small=mobilenet_v1_0.25_128_quant
log "docker run with $small from a mounted models folder"
start "$c-mounted" -v "$models:/models:ro" -e EDGE_MODELS_DIR=/models -e EDGE_MODEL="$small"
probe "$c-mounted" /images/grace_hopper.jpg "academic gown, academic robe, judge's robe" \
    --model "$small"
docker stop -t 30 "$c-mounted" >/dev/null

# Learned classes: taught in one container, served by a new one on the same volume. The image's
# /data belongs to its user, so a fresh named volume starts writable under --read-only.
key=container-proof-key-$$-0123456789
volume=edge-proof-data-$$
volumes+=("$volume")
learn() {  # learn NAME ARGS...: the image's own CLI against its own server
    local name=$1
    shift
    docker exec "$name" edge-server "$@" --url http://127.0.0.1:8080 --api-key "$key"
}
top_label() {  # top_label NAME PHOTO: the learned model's best label for a photo
    docker exec "$1" edge-server classify --url http://127.0.0.1:8080 --api-key "$key" \
        --model pets --json "$2" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["results"][0]["predictions"][0]["label"])'
}
printf '%s\n' "$key" >"$run/api-key"
chmod 0644 "$run/api-key"
keyed=(-v "$volume:/data" -e EDGE_API_KEY="$key" -v "$run/api-key:/run/api-key:ro")
log "learned classes: teach in one container, serve from a new one on the same volume"
start "$c-teach" "${keyed[@]}"
probe "$c-teach" /images/grace_hopper.jpg "military uniform" --api-key-file /run/api-key
for class in cat dog; do
    learn "$c-teach" learn add pets "$class" "/images/imprinting/${class}_train_0.bmp" >/dev/null ||
        die "teaching $class in the container failed"
done
owner=$(docker exec "$c-teach" stat -c '%u' /data/learned/pets.learned)
[ "$owner" = 10001 ] || die "the learned model belongs to uid $owner, not the image's user"
docker rm -f "$c-teach" >/dev/null  # a kill, not a stop: the 201s were synced to the volume
start "$c-served" "${keyed[@]}"
probe "$c-served" /images/grace_hopper.jpg "military uniform" --api-key-file /run/api-key
listed=$(learn "$c-served" learn list)
case $listed in
    "pets [ready]: cat (1), dog (1);"*) ;;
    *) die "the new container lists: $listed" ;;
esac
for class in cat dog; do
    label=$(top_label "$c-served" "/images/imprinting/${class}_test_0.bmp")
    [ "$label" = "$class" ] || die "${class}_test_0 came back $label from the new container"
done
docker stop -t 30 "$c-served" >/dev/null
log "learned in one container (uid $owner's file on volume $volume), killed; a new container" \
    "serves it: $listed; cat_test_0 -> cat, dog_test_0 -> dog"

log "container proof passed in $((SECONDS - started)) s"
