# Shared by the deploy scripts (sourced, not run): the cache folder, a private Docker daemon,
# waiting for HTTP, and a free local port.
# shellcheck shell=bash

# Downloaded rootfs tarballs, wheelhouses and the daemon's images live outside the repository so
# repeat runs are fast; deleting the folder rebuilds everything with the same commands.
CACHE=${EDGE_DEPLOY_CACHE:-/var/cache/edge-server-deploy}
mkdir -p "$CACHE"

log() { printf '%s [%s] %s\n' "$(date -u +%H:%M:%S)" "${0##*/}" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# with_margin SECONDS: what a wait allows for a worst case derived from the settings it waits
# for: half as much again plus 5 s, for what the bound leaves out (creating and starting a
# process or container, a manager noticing a change) on a machine busy with other work.
with_margin() { echo $(($1 * 3 / 2 + 5)); }

# A Docker daemon of our own (Debian's docker.io) on a private socket, so it neither needs nor
# disturbs any other daemon on the machine. No bridge and no iptables rules: builds and test
# containers run with --network none and are reached with `docker exec`. The images live in
# $CACHE/docker (one daemon at a time: flock). Sets DOCKER_HOST and DOCKERD_PID.
start_dockerd() {
    local run=$1
    exec 8>"$CACHE/docker.lock"
    flock -w 600 8 || die "another run holds $CACHE/docker.lock"
    export DOCKER_HOST="unix://$run/docker.sock"
    dockerd --data-root "$CACHE/docker" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
        -H "$DOCKER_HOST" --bridge=none --iptables=false >"$run/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    tail -20 "$run/dockerd.log" >&2
    die "dockerd did not start"
}

stop_dockerd() {
    [ -n "${DOCKERD_PID:-}" ] || return 0
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=
}

# Debian's client: the daemon is 20.10 and some machines carry a newer docker without buildx.
docker() { /usr/bin/docker "$@"; }

# The apt mirror this machine already uses, for debootstrap.
apt_mirror() {
    awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
}

# An unused TCP port on 127.0.0.1 (other services on the machine may hold 8080).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The catalog's default model (the one the image bakes in).
catalog_default() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["default"])' \
        "$1/models/catalog.json"
}

# build_image ARCH IMAGE LOG: Dockerfile.arm64 built for linux/ARCH (arm64 or amd64) offline, from
# a wheelhouse and the local base image, with the default model from $models (the build checks
# its sha256 against the catalog itself). Needs $src, $models and a running daemon.
# shellcheck disable=SC2154  # $src and $models are set by the proof that sources this file
build_image() {
    local arch=$1 image=$2 build_log=$3 machine default_model
    machine=$([ "$arch" = arm64 ] && echo aarch64 || echo x86_64)
    log "wheelhouse for $machine in wheels/"
    "$src/deploy/wheelhouse.sh" "$src/wheels" "$machine" >"$build_log.wheels" 2>&1 ||
        { tail -20 "$build_log.wheels" >&2; die "wheelhouse download failed"; }
    default_model=$(catalog_default "$src")
    [ -f "$src/models/$default_model.tflite" ] ||
        install -m 0644 "$models/$default_model.tflite" "$src/models/"
    local embedder=mobilenet_v1_1.0_224_quant_embedding_extractor
    [ -f "$src/models/$embedder.tflite" ] || install -m 0644 "$models/$embedder.tflite" "$src/models/"
    log "docker build --platform linux/$arch -f Dockerfile.arm64 (offline)"
    DOCKER_BUILDKIT=1 docker build --platform "linux/$arch" --network none \
        -f "$src/Dockerfile.arm64" --build-arg "BASE_IMAGE=edge-base:bookworm-$arch" \
        --build-arg PIP_OPTIONS="--no-index --find-links=wheels" \
        -t "$image" "$src" >"$build_log" 2>&1 || { tail -40 "$build_log" >&2; die "build failed"; }
}
