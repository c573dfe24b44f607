#!/usr/bin/env bash
# Prove the Swarm deployment (deploy/swarm/) on this machine: two Docker daemons in two network
# namespaces form a two-node swarm; a third namespace, joined to both by a bridge, holds the
# front door (HAProxy with deploy/swarm/haproxy.cfg) and the clients. With the real image (an
# amd64 build of Dockerfile.arm64, moved to the nodes by `docker save | docker load`):
#   - both nodes classify grace_hopper.jpg -> "military uniform"; the API key from the Docker
#     secret is enforced (401 without, 200 with)
#   - the front door spreads a bounded load over both nodes (answers counted per node)
#   - under continuous load through the front door, every request that fails is counted while a
#     task is killed, a node is drained and restored, the service is updated to a new image
#     version, and updated to a version that never turns ready (rolled back by Swarm): none may
#     fail, except answers cut mid-body by the SIGKILL of the task that was sending them
#   - classes taught on each node before all that are still served by both after it (each
#     node's `edge-data` volume)
# Every wait is derived from the timings it waits for (the deployed service's health check,
# stop grace period, restart, update and rollback settings; the front door's check settings),
# with a stated margin; when one runs out, what Swarm reports is printed.
# This kernel has no IPVS, so no routing mesh: host-mode ports behind the front door.
# Every daemon, container, process and namespace it starts is stopped or deleted on exit, by
# PID, also on failure; traffic stays inside the namespaces it creates.
#   deploy/prove-swarm.sh        (root; needs docker.io, iptables, haproxy, curl, debootstrap,
#                                 umoci, skopeo: deploy/host-tools.sh swarm)
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/.." && pwd)
models=$(cd "${MODELS_FROM:-$src/../shared/models}" && pwd)
images=$(cd "${IMAGES_DIR:-$src/../shared/images}" && pwd)
image=${IMAGE:-edge-server:amd64}
photo=$images/grace_hopper.jpg
label="military uniform"
stack=edge
service=${stack}_edge-server
started=$SECONDS

run=$(mktemp -d /var/tmp/edge-swarm.XXXXXX)
door=edge-door-$$
nodes=(edge-pi1-$$ edge-pi2-$$)
addrs=(10.77.0.11 10.77.0.12)
front=10.77.0.1
node_pids=()
haproxy_pid=''
load_pid=''
cleanup() {
    set +e
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    [ -n "$haproxy_pid" ] && kill "$haproxy_pid" 2>/dev/null && wait "$haproxy_pid" 2>/dev/null
    local i
    for i in "${!node_pids[@]}"; do
        on "$i" swarm leave --force >/dev/null 2>&1
        # shellcheck disable=SC2046 # one id per word
        on "$i" rm -f $(on "$i" ps -aq 2>/dev/null) >/dev/null 2>&1
        kill "${node_pids[$i]}" 2>/dev/null
    done
    for i in "${!node_pids[@]}"; do
        for _ in $(seq 1 40); do kill -0 "${node_pids[$i]}" 2>/dev/null || break; sleep 0.5; done
        kill -9 "${node_pids[$i]}" 2>/dev/null
        wait "${node_pids[$i]}" 2>/dev/null
    done
    stop_dockerd
    # Whatever still runs in a namespace (a container shim, a stray client) is ended by its PID.
    local ns pid
    for ns in "$door" "${nodes[@]}"; do
        ip netns list | awk '{ print $1 }' | grep -qx "$ns" || continue
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns"
    done
    findmnt -rn -o TARGET | grep "^$run/" | sort -r | xargs -r -n1 umount -l
    mountpoint -q "$run" && umount "$run"
    rm -rf "$run"
}
trap cleanup EXIT
# An interrupted run still stops what it started (through the EXIT trap).
trap 'exit 130' INT TERM
# The nodes' images and containers live in memory (each node holds the image once): loading
# them is faster, and deleting them takes no time (from disk: a minute here).
mount -t tmpfs -o size=3g,mode=0700 edge-swarm "$run"

# on I ARGS...: the Docker client against node I's daemon.
on() {
    local i=$1
    shift
    docker -H "unix://$run/n$i/docker.sock" "$@"
}
# in_door ARGS...: a command in the front door's namespace, where the clients run.
in_door() { ip netns exec "$door" "$@"; }
# json FILE KEY: one value of a load summary.
json() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# diagnose: what Swarm and the nodes report, printed when a wait runs out.
diagnose() {
    set +e
    log "what Swarm reports:"
    {
        echo "update status: $(on 0 service inspect "$service" --format \
            '{{if .UpdateStatus}}{{.UpdateStatus.State}} since {{.UpdateStatus.StartedAt}}: {{.UpdateStatus.Message}}{{end}}' 2>&1)"
        on 0 service ps "$service" --no-trunc \
            --format '{{.ID}} {{.Image}} desired={{.DesiredState}} | {{.CurrentState}} | {{.Error}}' 2>&1
        local task
        for task in $(on 0 service ps "$service" -q 2>/dev/null); do
            on 0 inspect --type task "$task" --format \
                '{{.ID}} created {{.CreatedAt}} on node {{.NodeID}}, desired {{.DesiredState}}, {{.Status.State}} since {{.Status.Timestamp}}' 2>&1
        done
        local i c
        for i in 0 1; do
            for c in $(on "$i" ps -aq --filter "label=com.docker.swarm.service.name=$service" 2>/dev/null); do
                on "$i" inspect "$c" --format "node $i {{.Config.Image}} {{.State.Status}} \
health={{if .State.Health}}{{.State.Health.Status}} streak={{.State.Health.FailingStreak}}\
{{range .State.Health.Log}} [{{.ExitCode}} {{printf \"%.40q\" .Output}}]{{end}}{{end}}" 2>&1
            done
        done
        echo "front door: $(door_sees_now 2>&1)"
    } | sed 's/^/    /' >&2
    set -e
}
# wait_for SECONDS WHAT COMMAND...: poll every half second until the command succeeds; when the
# time runs out, print what Swarm reports and fail.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local until=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $until ] || { diagnose; die "$what: not within $limit s"; }
        sleep 0.5
    done
}

# --- the image: built like the arm64 one, for amd64, by the shared build daemon --------------
start_dockerd "$run"
"$src/deploy/base-image.sh" amd64
default_model=$(catalog_default "$src")
t=$SECONDS
build_image amd64 "$image" "$run/build.log"
# Two more versions on top of it: v2 differs only by a label (a release with the same code),
# and a broken release whose start never finishes: its labels file is a FIFO nobody writes, so
# the process runs but its port never opens (like a model on a hung network mount).
docker build --network none -t "$image-v2" - >>"$run/build.log" 2>&1 <<EOF ||
FROM $image
LABEL org.opencontainers.image.version=2
EOF
    die "v2 build failed"
docker build --network none -t "$image-never-ready" - >>"$run/build.log" 2>&1 <<EOF ||
FROM $image
USER 0:0
RUN mkfifo -m 0444 /opt/edge-server/labels.fifo
USER 10001:10001
ENV EDGE_LABELS=/opt/edge-server/labels.fifo
LABEL org.opencontainers.image.version=never-ready
EOF
    die "never-ready build failed"
size=$(docker image inspect "$image" --format '{{.Size}}')
log "built $image and two versions on it in $((SECONDS - t)) s:" \
    "$(docker image inspect "$image" --format '{{.Os}}/{{.Architecture}}'), $((size / 1000000)) MB"
t=$SECONDS
docker save "$image" "$image-v2" "$image-never-ready" -o "$run/images.tar"
stop_dockerd
log "docker save: $(($(stat -c %s "$run/images.tar") / 1000000)) MB in $((SECONDS - t)) s"

# --- a LAN of three namespaces: the front door on a bridge, a Pi on each end of it ----------
ip netns add "$door"
ip -n "$door" link set lo up
ip -n "$door" link add br0 type bridge
ip -n "$door" addr add "$front/24" dev br0
ip -n "$door" link set br0 up
for i in 0 1; do
    ns=${nodes[$i]}
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "pi$i" netns "$door" type veth peer name eth0 netns "$ns"
    ip -n "$door" link set "pi$i" master br0 up
    ip -n "$ns" addr add "${addrs[$i]}/24" dev eth0
    ip -n "$ns" link set eth0 up
done

# --- one Docker daemon per Pi, a swarm of two ------------------------------------------------
# A swarm task tries to pull its image before it falls back to the local copy; with no registry
# that is a wait for a lookup that cannot succeed on every task start (20 s here). The daemon's
# DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 skips the pull, as on Pis fed by `docker load`.
for i in 0 1; do
    mkdir -p "$run/n$i"
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --net="/var/run/netns/${nodes[$i]}" \
        dockerd --data-root "$run/n$i/data" --exec-root "$run/n$i/exec" \
        --pidfile "$run/n$i/docker.pid" -H "unix://$run/n$i/docker.sock" \
        --storage-driver overlay2 >"$run/n$i/dockerd.log" 2>&1 &
    node_pids[i]=$!
done
for i in 0 1; do
    wait_for 60 "dockerd on ${nodes[$i]}" on "$i" info
done
t=$SECONDS
on 0 load -i "$run/images.tar" >/dev/null &
load0=$!
on 1 load -i "$run/images.tar" >/dev/null
wait "$load0"
rm "$run/images.tar"
log "dockerd $(on 0 version --format '{{.Server.Version}}') in ${nodes[*]}" \
    "(pids ${node_pids[*]});" \
    "docker load on both: $((SECONDS - t)) s"
t=$(date +%s.%N)
on 0 swarm init --advertise-addr "${addrs[0]}" >/dev/null
on 1 swarm join --advertise-addr "${addrs[1]}" --token "$(on 0 swarm join-token -q worker)" \
    "${addrs[0]}:2377" >/dev/null
for i in 0 1; do
    id=$(on "$i" info --format '{{.Swarm.NodeID}}')
    on 0 node update --label-add edge-server=true "$id" >/dev/null
done
log "swarm of $(on 0 node ls -q | wc -l) nodes in $(elapsed "$t") s"

# --- the stack, the front door, the API key --------------------------------------------------
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$run/api-keys.txt"
on 0 secret create edge-api-key "$run/api-keys.txt" >/dev/null
# Health checked every 2 s (a Pi: 10 s) and a start allowed 20 s (a Pi: 60 s), so a broken
# version is seen within half a minute.
export EDGE_NODE_ARCH=x86_64 EDGE_HEALTH_INTERVAL=2s EDGE_HEALTH_START_PERIOD=20s \
    EDGE_UPDATE_DELAY=5s EDGE_UPDATE_MONITOR=5s
deploy() {
    EDGE_IMAGE=$1 docker -H "unix://$run/n0/docker.sock" stack deploy --resolve-image never \
        -c "$src/deploy/swarm/stack.yml" "$stack" >>"$run/deploy.log" 2>&1 ||
        { tail -20 "$run/deploy.log" >&2; die "stack deploy failed"; }
}
# bounds NODES: the worst cases the waits follow from, in whole seconds, read back from the
# deployed service (so they follow the stack and the variables this proof sets):
#   grace     a task stopped: its stop grace period
#   verdict   Docker judges a new container healthy or unhealthy:
#             start period + (retries + 1) x (interval + timeout)
#   replace   a task replaced: the old one stopped (stop grace period), the restart delay, a verdict
#   update    a rolling update: per node, a task replaced and the update delay; then the monitor
#   rollback  an update to a version that never turns ready: the first nodes (parallelism) get it
#             and it is judged unhealthy (a task replaced); per node updated, a task replaced
#             and the rollback delay; then the rollback monitor
#   settle    the rollback's delay and monitor: how long its status may lag the last node
bounds() {
    on 0 service inspect "$service" | python3 -c 'import json, math, sys
spec = json.load(sys.stdin)[0]["Spec"]
task, nodes = spec["TaskTemplate"], int(sys.argv[1])
health = task["ContainerSpec"]["Healthcheck"]
def s(d, k, default=0.0): return d.get(k, default * 1e9) / 1e9
verdict = s(health, "StartPeriod") + (health.get("Retries", 3) + 1) * (
    s(health, "Interval", 30) + s(health, "Timeout", 30))
replace = s(task["ContainerSpec"], "StopGracePeriod", 10) + s(task["RestartPolicy"], "Delay") + verdict
up, back = spec["UpdateConfig"], spec["RollbackConfig"]
update = nodes * (replace + s(up, "Delay")) + s(up, "Monitor", 5)
changed = min(nodes, up.get("Parallelism", 1) or nodes)
rollback = replace + changed * (replace + s(back, "Delay")) + s(back, "Monitor", 5)
grace = s(task["ContainerSpec"], "StopGracePeriod", 10)
settle = s(back, "Delay") + s(back, "Monitor", 5)
print(*(math.ceil(x) for x in (grace, verdict, replace, update, rollback, settle)))' "$1"
}
# door_bound: the front door's worst case to see a server change state: (rise or fall, the
# larger, + 1) checks, each every `inter` and allowed `timeout connect` plus `inter` to answer.
door_bound() {
    local cfg=$src/deploy/swarm/haproxy.cfg inter rise fall connect
    inter=$(grep -oP '^\s*default-server .*\binter \K\d+(?=s\b)' "$cfg")
    rise=$(grep -oP '^\s*default-server .*\brise \K\d+' "$cfg")
    fall=$(grep -oP '^\s*default-server .*\bfall \K\d+' "$cfg")
    connect=$(grep -oP '^\s*timeout connect \K\d+(?=s\b)' "$cfg")
    echo $((((rise > fall ? rise : fall) + 1) * (2 * inter + connect)))
}
# task_image I, task_id I: the image and id of the service's running container on node I.
task_image() {
    on "$1" ps --filter "label=com.docker.swarm.service.name=$service" --format '{{.Image}}'
}
task_id() { on "$1" ps -q --filter "label=com.docker.swarm.service.name=$service"; }
no_task_on() { [ -z "$(task_id "$1")" ]; }
healthy_on() {
    [ "$(on "$1" ps --filter "label=com.docker.swarm.service.name=$service" \
        --filter health=healthy -q | wc -l)" = 1 ]
}
# replaced_on I OLD: a healthy container on node I that is not OLD.
replaced_on() { healthy_on "$1" && [ "$(task_id "$1")" != "$2" ]; }
# door_sees_now: HAProxy's view of pi1 and pi2, e.g. `UP DOWN`.
door_sees_now() {
    in_door python3 -c 'import csv, io, sys, urllib.request
rows = csv.DictReader(io.StringIO(urllib.request.urlopen(sys.argv[1]).read().decode().lstrip("# ")))
print(" ".join(r["status"].split()[0] for r in rows if r["svname"] in ("pi1", "pi2")))' \
        "http://$front:8404/stats;csv"
}
# door_sees STATE...: whether the front door sees that, e.g. `door_sees UP UP`.
door_sees() { [ "$(door_sees_now)" = "$*" ]; }

t=$(date +%s.%N)
deploy "$image"
read -r grace verdict replace update rollback settle <<<"$(bounds 2)"
seen_by_door=$(door_bound)
log "bounds from the deployed service: health verdict $verdict s, a task replaced $replace s," \
    "an update on 2 nodes $update s, a rollback $rollback s; the front door $seen_by_door s;" \
    "each wait allows its bound x 1.5 + 5 s (with_margin)"
for i in 0 1; do
    wait_for "$(with_margin "$replace")" "a healthy task on ${nodes[$i]}" healthy_on "$i"
done
log "stack deployed: a healthy task on each node $(elapsed "$t") s after docker stack deploy"

EDGE_PI1=${addrs[0]} EDGE_PI2=${addrs[1]} EDGE_FRONT_DOOR=$front:8080 \
    EDGE_FRONT_DOOR_STATS=$front:8404 \
    ip netns exec "$door" haproxy -db -f "$src/deploy/swarm/haproxy.cfg" >"$run/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_for "$(with_margin "$seen_by_door")" "the front door sees both Pis ready" door_sees UP UP
log "front door: HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }') (pid $haproxy_pid), both Pis UP"

for i in 0 1; do
    in_door python3 "$src/deploy/probe.py" "http://${addrs[$i]}:8080" "$photo" "$label" \
        --model "$default_model" --api-key-file "$run/api-keys.txt" --timeout 30 >"$run/probe" ||
        die "${nodes[$i]} failed the probe"
    log "${nodes[$i]} (${addrs[$i]}): $(cat "$run/probe")"
done

status() { in_door curl -s -o /dev/null -w '%{http_code}' "$@" -H 'Content-Type: image/jpeg' \
    --data-binary "@$photo" "http://$front:8080/classify"; }
without=$(status)
with=$(status -H "X-API-Key: $(head -1 "$run/api-keys.txt")")
wrong=$(status -H "X-API-Key: not-the-key-but-long-enough")
log "API key from the Docker secret: $without without a key, $wrong with a wrong one, $with with it"
[ "$without/$wrong/$with" = 401/401/200 ] || die "the API key is not enforced"

# Learned classes, taught on each Pi (each keeps its own in the stack's `edge-data` volume):
# they must outlive the kill, the drain, the update and the rollback below.
learned() { in_door python3 "$src/deploy/learned.py" "$@" --api-key-file "$run/api-keys.txt"; }
for i in 0 1; do
    for class in cat dog; do
        learned "http://${addrs[$i]}:8080" teach pets "$class" \
            "$images/imprinting/${class}_train_0.bmp" >"$run/taught" ||
            die "teaching $class on ${nodes[$i]} failed"
    done
done
log "taught pets on each Pi: $(cat "$run/taught")"

memory=$(for i in 0 1; do on "$i" stats --no-stream --format '{{.MemUsage}}'; done | paste -sd ';')
log "memory per task (usage / limit): $memory"

# --- load through the front door -------------------------------------------------------------
# load NAME [load.py options...]: a load in the background until `load_done NAME`.
load() {
    local name=$1
    shift
    in_door python3 "$src/deploy/load.py" "http://$front:8080" "$photo" "$label" \
        --api-key-file "$run/api-keys.txt" --stats "http://$front:8404/stats" \
        --stop-file "$run/$name.stop" "$@" >"$run/$name.json" &
    load_pid=$!
}
# load_done NAME [CUT]: stop it, print what it saw; fail on any failed request, except, with
# CUT (the step SIGKILLs a task), answers cut mid-body: the task sending them was killed, and
# the front door can retry only a request whose answer has not started.
load_done() {
    local name=$1 cut_by=${2:-} out=$run/$1.json
    touch "$run/$name.stop"
    wait "$load_pid" || true
    load_pid=''
    [ -s "$out" ] || die "$name: the load printed no summary"
    local cut other lost failed
    cut=$(json "$out" cut_mid_answer)
    other=$(json "$out" other_failed)
    lost=$(json "$out" workers_lost)
    if [ -n "$cut_by" ]; then
        failed="$cut cut mid-answer by $cut_by, $other other failures"
    else
        failed="$(json "$out" failed) failed"
    fi
    log "$name: $(json "$out" requests) requests in $(json "$out" seconds) s, $failed" \
        "$(json "$out" failures); answered by $(json "$out" served_by);" \
        "front door retries $(json "$out" retries), redispatches $(json "$out" redispatches)"
    [ "$lost" = 0 ] || die "$name: $lost load workers ended early"
    [ "$(json "$out" requests)" -gt 0 ] || die "$name: no request was made"
    [ "$other" = 0 ] || die "$name: $other requests failed"
    [ -n "$cut_by" ] || [ "$cut" = 0 ] || die "$name: $cut answers cut mid-body with no task killed"
}

load spread --requests 100 --concurrency 2 --pause 0
wait "$load_pid" || true
touch "$run/spread.stop"
load_pid=''
log "spread: $(json "$run/spread.json" requests) requests," \
    "answered by $(json "$run/spread.json" served_by), $(json "$run/spread.json" failed) failed"
python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(not (s["failed"] == 0 and s["requests"] == 100 and
              all(s["served_by"].get(p, 0) >= 30 for p in ("pi1", "pi2"))))' "$run/spread.json" ||
    die "the load was not spread over both Pis"

# A task killed (SIGKILL, mid-request) on pi2: Swarm starts a new one.
load kill --seconds 120
sleep 2
old=$(task_id 1)
t=$(date +%s.%N)
on 1 kill "$old" >/dev/null
wait_for "$(with_margin "$replace")" "a new task on ${nodes[1]}" replaced_on 1 "$old"
restored=$(elapsed "$t")
wait_for "$(with_margin "$seen_by_door")" "the front door sees pi2 back" door_sees UP UP
log "task killed on ${nodes[1]}: Swarm ran a healthy new one after $restored s"
load_done kill "the kill"

# pi1 drained (its task stopped gracefully), then made active again.
load drain --seconds 120
sleep 2
node1=$(on 0 info --format '{{.Swarm.NodeID}}')
t=$(date +%s.%N)
on 0 node update --availability drain "$node1" >/dev/null
wait_for "$(with_margin "$grace")" "the task on ${nodes[0]} stopped" no_task_on 0
drained=$(elapsed "$t")
wait_for "$(with_margin "$seen_by_door")" "the front door sees pi1 down" door_sees DOWN UP
sleep 3
t=$(date +%s.%N)
on 0 node update --availability active "$node1" >/dev/null
wait_for "$(with_margin "$replace")" "a healthy task back on ${nodes[0]}" healthy_on 0
back=$(elapsed "$t")
wait_for "$(with_margin "$seen_by_door")" "the front door sees pi1 back" door_sees UP UP
log "${nodes[0]} drained: its task stopped in $drained s; active again: healthy in $back s"
load_done drain

# update_state: the service's update state, and when that update started.
update_state() {
    on 0 service inspect "$service" \
        --format '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}'
}
# converged_on IMAGE: the service's spec names IMAGE and each node runs one healthy task of it.
converged_on() {
    local i
    [ "$(on 0 service inspect "$service" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}')" = "$1" ] ||
        return 1
    for i in 0 1; do
        healthy_on "$i" && [ "$(task_image "$i")" = "$1" ] || return 1
    done
}
# stuck_behind_port: a task of the current spec that Swarm wants running but cannot place
# because the host port is held (by a task of the same spec that runs on that node).
stuck_behind_port() {
    local tasks
    tasks=$(on 0 service ps "$service" --no-trunc --filter desired-state=running \
        --format '{{.CurrentState}} {{.Error}}')
    grep -q '^Pending .*host-mode port already in use' <<<"$tasks"
}
# update_to IMAGE BOUND [BACK_TO]: deploy the stack with IMAGE, wait until the update ends (at
# most BOUND with the margin); its final state. Each change of state is logged with its time.
# With BACK_TO (a rollback is expected), the time when both nodes run healthy BACK_TO tasks again
# under the spec Swarm rolled back to is logged and written to $run/converged; from then on the
# update status must end within the rollback's delay and monitor ($settle, with the margin).
update_to() {
    local before state seen='' limit start deadline settled='' converged=''
    limit=$(with_margin "$2")
    before=$(update_state)
    start=$(date +%s.%N)
    deadline=$((SECONDS + limit))
    rm -f "$run/converged"
    deploy "$1"
    while :; do
        state=$(update_state)
        if [ "$state" != "$before" ] && [ "${state%% *}" != "$seen" ]; then
            seen=${state%% *}
            log "  $seen after $(elapsed "$start") s"
        fi
        case "$state" in
        completed* | rollback_completed* | paused* | rollback_paused*)
            [ "$state" != "$before" ] && break ;;
        esac
        if [ -n "${3:-}" ] && [ -z "$converged" ] && [ "${state%% *}" = rollback_started ] &&
            converged_on "$3"; then
            converged=$(elapsed "$start")
            echo "$converged" >"$run/converged"
            settled=$((SECONDS + $(with_margin "$settle")))
            log "  both nodes on $3 again, healthy, after $converged s"
        fi
        if [ -n "$settled" ] && [ $SECONDS -gt "$settled" ]; then
            diagnose
            log "the service has converged on $3 but Swarm's update status did not end within" \
                "$(with_margin "$settle") s (rollback delay + monitor $settle s)"
            break
        fi
        if [ $SECONDS -gt "$deadline" ]; then
            diagnose
            log "the update to $1 did not end within $limit s (bound $2 s)"
            break
        fi
        sleep 0.5
    done
    echo "${state%% *}"
}

# A rolling update to a new version, one node at a time.
load update --seconds 240
sleep 2
t=$(date +%s.%N)
state=$(update_to "$image-v2" "$update")
took=$(elapsed "$t")
wait_for "$(with_margin "$seen_by_door")" "the front door sees both Pis after the update" door_sees UP UP
versions="$(task_image 0) $(task_image 1)"
log "rolling update to $image-v2: $state in $took s; running: $versions"
[ "$state" = completed ] || die "the update ended $state"
[ "$versions" = "$image-v2 $image-v2" ] || die "not both nodes run $image-v2"
load_done update

# An update to a version that never turns ready: Swarm rolls it back, v2 keeps serving.
load rollback --seconds 240
sleep 2
t=$(date +%s.%N)
state=$(update_to "$image-never-ready" "$rollback" "$image-v2")
took=$(elapsed "$t")
wait_for "$(with_margin "$seen_by_door")" "the front door sees both Pis after the rollback" door_sees UP UP
versions="$(task_image 0) $(task_image 1)"
log "update to $image-never-ready: $state after $took s; running: $versions"
case "$state" in
rollback_completed) ;;
rollback_started)
    # Swarm rolled the spec back and both nodes serve v2, but its own replacement task waits for
    # a host port that a second task of the same slot already holds, and Swarm's updater waits
    # for that task with no time limit: the status would stay rollback_started (docs/deploy/busy-machine.md).
    converged=$(cat "$run/converged" 2>/dev/null || true)
    if [ -z "$converged" ] || ! stuck_behind_port; then
        die "the bad update ended $state, not rolled back"
    fi
    log "rolled back: both nodes healthy on $image-v2 after $converged s; Swarm's update status" \
        "stays rollback_started, its replacement task Pending behind the host port" \
        "(a Swarm race, docs/deploy/busy-machine.md)"
    ;;
*) die "the bad update ended $state, not rolled back" ;;
esac
# What failed it: Swarm's record of the never-ready tasks (a restarted one may also have found
# the port still held).
why=$(on 0 service ps "$service" --no-trunc --format '{{.Image}}|{{.Error}}' |
    awk -F'|' -v i="$image-never-ready" '$1 == i && $2 != "" { print $2 }' | sort | uniq -c |
    awk '{ $1 = $1 " x"; print }' | paste -sd ';')
log "the never-ready tasks ended with: ${why:-no error recorded}"
case "$why" in *unhealthy*) ;; *) die "no never-ready task failed its health check" ;; esac
[ "$versions" = "$image-v2 $image-v2" ] || die "not both nodes run $image-v2 after the rollback"
load_done rollback

for i in 0 1; do
    kept=$(learned "http://${addrs[$i]}:8080" classes pets) || die "no pets on ${nodes[$i]}"
    [ "$kept" = "cat:1,dog:1" ] || die "${nodes[$i]} kept $kept of pets, not cat:1,dog:1"
done
log "learned classes kept on both Pis through the kill, drain, update and rollback: $kept"

log "swarm proof passed in $((SECONDS - started)) s"
