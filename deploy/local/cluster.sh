#!/usr/bin/env bash
# A local distributed cluster: N workers and one web node on the local Kafka and Redis.
#
#   deploy/local/cluster.sh up [N]   start Kafka and Redis if needed, N workers (default 2) and
#                                    a web node; return once every one of them is ready
#   deploy/local/cluster.sh status   each process and what its /readyz says
#   deploy/local/cluster.sh down     stop the workers and the web node (Kafka and Redis stay;
#                                    deploy/local/services.sh down stops them)
#   deploy/local/cluster.sh reset    delete the topics and Redis keys of LIVEREC_TOPIC_PREFIX,
#                                    for a replay that starts from nothing (cluster down first)
#
# Settings come from the environment as for any liverec command: LIVEREC_BUS and LIVEREC_STORE
# (default: the local services), LIVEREC_PORT (the web node's, 8000), LIVEREC_TOPIC_PREFIX,
# LIVEREC_PARTITIONS. Logs and pid files go to LIVEREC_CLUSTER_DIR (deploy/local/.cluster).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIVEREC=${LIVEREC_BIN:-$REPO/.venv/bin/liverec}
STATE=${LIVEREC_CLUSTER_DIR:-$HERE/.cluster}
export LIVEREC_BUS=${LIVEREC_BUS:-kafka://127.0.0.1:${LIVEREC_KAFKA_PORT:-9092}}
export LIVEREC_STORE=${LIVEREC_STORE:-redis://127.0.0.1:${LIVEREC_REDIS_PORT:-6379}/0}
WEB_PORT=${LIVEREC_PORT:-8000}
READY_S=${LIVEREC_CLUSTER_READY_S:-180}

say() { echo "cluster: $*"; }
fail() { echo "cluster: $*" >&2; exit 1; }

# The status code of GET http://127.0.0.1:PORT/PATH, or nothing when nothing answers.
http_status() { # port path
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    read -r _ code _ <&3 || true
    echo "${code:-}"
  ) 2>/dev/null
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() { # the pid files of live processes
  local f
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then echo "$f"; else rm -f "$f"; fi
  done
}

# A worker prints the port of its probes in its start line (LIVEREC_LOG_LEVEL info or lower).
worker_port() { # log
  sed -n 's|.*health and metrics on http://[^ ]*:\([0-9][0-9]*\)/ .*|\1|p' "$1" | tail -n 1
}

wait_ready() { # name pidfile log port-command
  local deadline=$((SECONDS + READY_S)) port="" code=""
  while :; do
    alive "$2" || { tail -n 20 "$3" >&2; fail "$1 exited (log: $3)"; }
    [ -n "$port" ] || port=$($4 "$3")
    if [ -n "$port" ]; then
      code=$(http_status "$port" /readyz)
      [ "$code" = 200 ] && { say "$1 ready on http://127.0.0.1:$port/readyz"; return 0; }
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ -n "$port" ] && http_status "$port" /readyz >/dev/null
      tail -n 20 "$3" >&2
      fail "$1 not ready within $READY_S s (readyz: ${code:-no answer}; log: $3)"
    fi
    sleep 1
  done
}

web_port() { echo "$WEB_PORT"; }

up() {
  local n=${1:-2} partitions=${LIVEREC_PARTITIONS:-4} i
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || fail "workers: expected a positive number, got '$n'"
  [ -x "$LIVEREC" ] || fail "$LIVEREC is missing: run 'make setup' first"
  if [ "$n" -gt "$partitions" ]; then
    fail "$n workers for $partitions partitions: a worker without a partition is never ready" \
         "(set LIVEREC_PARTITIONS before the topic exists, or start fewer)"
  fi
  if [ -n "$(running)" ]; then
    fail "already up ($(running | wc -l) processes; deploy/local/cluster.sh status); run" \
         "'deploy/local/cluster.sh down' first"
  fi
  "$HERE/services.sh" up
  mkdir -p "$STATE"
  for i in $(seq 1 "$n"); do
    LIVEREC_LOG_LEVEL=${LIVEREC_LOG_LEVEL:-info} nohup "$LIVEREC" worker \
      >"$STATE/worker-$i.log" 2>&1 &
    echo $! >"$STATE/worker-$i.pid"
  done
  LIVEREC_PORT=$WEB_PORT nohup "$LIVEREC" web >"$STATE/web.log" 2>&1 &
  echo $! >"$STATE/web.pid"
  say "started $n worker(s) and a web node on $LIVEREC_BUS and $LIVEREC_STORE; waiting until" \
      "each is ready (logs in $STATE)"
  for i in $(seq 1 "$n"); do
    wait_ready "worker $i" "$STATE/worker-$i.pid" "$STATE/worker-$i.log" worker_port
  done
  wait_ready "web node" "$STATE/web.pid" "$STATE/web.log" web_port
  say "ready: $n worker(s); the page on http://127.0.0.1:$WEB_PORT/"
}

status() {
  local f name log port code rc=0
  [ -n "$(running)" ] || { say "down"; return 3; }
  while IFS= read -r f; do
    name=$(basename "$f" .pid); log="$STATE/$name.log"
    if [ "$name" = web ]; then port=$WEB_PORT; else port=$(worker_port "$log"); fi
    code=$(http_status "${port:-0}" /readyz)
    [ "$code" = 200 ] || rc=3
    say "$name: pid $(cat "$f"), port ${port:-?}, readyz ${code:-no answer}"
  done < <(running)
  return $rc
}

down() {
  local f pid stopped=0
  while IFS= read -r f; do
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
    stopped=$((stopped + 1))
  done < <(running)
  say "stopped $stopped processes (Kafka and Redis keep running: deploy/local/services.sh down)"
}

reset() {
  [ -x "$LIVEREC" ] || fail "$LIVEREC is missing: run 'make setup' first"
  [ -z "$(running)" ] || fail "the cluster is up: run 'deploy/local/cluster.sh down' first"
  "$HERE/services.sh" up >/dev/null
  "$LIVEREC" reset --yes
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  reset) reset ;;
  status) status ;;
  *) echo "usage: $0 up [N]|status|down|reset" >&2; exit 2 ;;
esac
