#!/usr/bin/env bash
# Local Kafka (single-node KRaft, fetched once from Maven Central, run on Java 17) and Redis
# (Debian's redis-server, AOF on) for the distributed runtime and the integration tests.
#
#   deploy/local/services.sh up|down|status|stop kafka|redis
#
# Ports: LIVEREC_KAFKA_PORT (9092; its controller listens on the next port) and
# LIVEREC_REDIS_PORT (6379), on 127.0.0.1 only. Data, logs and the broker's jars live in
# LIVEREC_SERVICES_DIR (default deploy/local/.services). `up` is safe to call twice: what
# already answers is left alone.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${LIVEREC_SERVICES_DIR:-$HERE/.services}
KAFKA_PORT=${LIVEREC_KAFKA_PORT:-9092}
CONTROLLER_PORT=$((KAFKA_PORT + 1))
REDIS_PORT=${LIVEREC_REDIS_PORT:-6379}
KAFKA_DIR=$STATE/kafka-$KAFKA_PORT
REDIS_DIR=$STATE/redis-$REDIS_PORT
LIBS=$STATE/kafka-libs

say() { echo "services: $*"; }
fail() { echo "services: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds logfile
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    if [ $SECONDS -ge $deadline ]; then
      [ -f "$4" ] && tail -n 20 "$4" >&2
      fail "$2 did not answer on 127.0.0.1:$1 within $3 s (log: $4)"
    fi
    sleep 0.5
  done
}

apt_install() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "$1 is missing: install the Debian package $2"
    sudo=sudo
  fi
  say "installing $2 (Debian package)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

kafka_jars() {
  [ -f "$LIBS/.complete" ] && return 0
  apt_install java openjdk-17-jre-headless
  apt_install mvn maven
  say "fetching Apache Kafka from Maven Central (once) into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIBS" \
    || fail "Maven could not fetch Kafka (see above)"
  touch "$LIBS/.complete"
}

redis_up() {
  if port_open "$REDIS_PORT"; then say "redis already answers on $REDIS_PORT"; return 0; fi
  apt_install redis-server redis-server
  mkdir -p "$REDIS_DIR"
  # The workers' row-log appends grow the AOF by megabytes a second while compaction keeps
  # the dataset small: at the default 64 MB floor Redis rewrote its whole dataset every ~8 s
  # at 1,000 events/s, each rewrite a second of a core (docs/production.md).
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
    --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb --save "" \
    --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
  wait_port "$REDIS_PORT" redis 20 "$REDIS_DIR/redis.log"
  say "redis up on 127.0.0.1:$REDIS_PORT (AOF in $REDIS_DIR)"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then say "kafka already answers on $KAFKA_PORT"; return 0; fi
  kafka_jars
  mkdir -p "$KAFKA_DIR/data"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" "$HERE/kafka/server.properties.in" \
      > "$KAFKA_DIR/server.properties"
  local java_opts=(-Xms256m -Xmx768m -Dlog4j2.configurationFile="$HERE/kafka/log4j2.yaml")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster
    cluster=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java "${java_opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
      -t "$cluster" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; fail "could not format Kafka's storage"; }
  fi
  nohup java "${java_opts[@]}" -cp "$LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/kafka.log" 2>&1 &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_port "$KAFKA_PORT" kafka 90 "$KAFKA_DIR/kafka.log"
  say "kafka up on 127.0.0.1:$KAFKA_PORT (KRaft, data in $KAFKA_DIR/data)"
}

stop_pidfile() { # pidfile name
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    say "$2 stopped"
  fi
  rm -f "$1"
}

status() {
  local rc=0
  if port_open "$KAFKA_PORT"; then say "kafka: up on $KAFKA_PORT"; else say "kafka: down"; rc=3; fi
  if port_open "$REDIS_PORT"; then say "redis: up on $REDIS_PORT"; else say "redis: down"; rc=3; fi
  return $rc
}

case "${1:-}" in
  up) redis_up; kafka_up ;;
  down) stop_pidfile "$KAFKA_DIR/kafka.pid" kafka; stop_pidfile "$REDIS_DIR/redis.pid" redis ;;
  stop) # one service: the restart tests stop it, then `up` brings it back
    case "${2:-}" in
      kafka) stop_pidfile "$KAFKA_DIR/kafka.pid" kafka ;;
      redis) stop_pidfile "$REDIS_DIR/redis.pid" redis ;;
      *) echo "usage: $0 stop kafka|redis" >&2; exit 2 ;;
    esac ;;
  status) status ;;
  *) echo "usage: $0 up|down|stop kafka|redis|status" >&2; exit 2 ;;
esac
