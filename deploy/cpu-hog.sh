#!/usr/bin/env bash
# Keep every CPU busy beside a proof, at normal priority, the way a Pi that also runs Home
# Assistant or Frigate is never quiet: one `python3 -c 'while True: pass'` per CPU (or N).
#   deploy/cpu-hog.sh start [N] PIDFILE    start N busy loops (default: one per CPU), PIDs to PIDFILE
#   deploy/cpu-hog.sh stop PIDFILE         stop those PIDs (and only those), remove PIDFILE
#   deploy/cpu-hog.sh run [N] -- COMMAND…  start them, run COMMAND, stop them; COMMAND's status
set -euo pipefail

start() {
    local n=$1 pidfile=$2 i
    : >"$pidfile"
    for ((i = 0; i < n; i++)); do
        python3 -c 'while True: pass' &
        echo $! >>"$pidfile"
    done
    echo "cpu-hog: $n busy loops, pids $(paste -sd ' ' "$pidfile")" >&2
}

stop() {
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    while read -r pid; do
        kill "$pid" 2>/dev/null || true
    done <"$pidfile"
    rm -f "$pidfile"
}

case "${1:-}" in
start)
    shift
    n=$(nproc)
    [ $# -eq 2 ] && { n=$1; shift; }
    start "$n" "$1"
    ;;
stop) stop "$2" ;;
run)
    shift
    n=$(nproc)
    [ "${1:-}" != -- ] && { n=$1; shift; }
    [ "${1:-}" = -- ] || { echo "usage: $0 run [N] -- COMMAND..." >&2; exit 2; }
    shift
    pidfile=$(mktemp)
    trap 'stop "$pidfile"' EXIT
    trap 'exit 130' INT TERM
    start "$n" "$pidfile"
    rc=0
    "$@" || rc=$?
    exit "$rc"
    ;;
*)
    sed -n '2,6p' "$0" >&2
    exit 2
    ;;
esac
