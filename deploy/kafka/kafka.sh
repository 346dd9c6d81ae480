#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, combined broker + controller) on 127.0.0.1 for development
# and CI. Jars come from Maven Central via pom.xml.
#
#   deploy/kafka/kafka.sh fetch     copy the jars into deploy/kafka/libs (skipped if present)
#   deploy/kafka/kafka.sh start     format storage, start, wait until it answers; prints the
#                                   bootstrap address (127.0.0.1:$KAFKA_PORT)
#   deploy/kafka/kafka.sh stop      stop it and delete its data
#   deploy/kafka/kafka.sh restart   stop it and start it again on the same data
#
# KAFKA_PORT (default 19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_DATA (a directory under
# /tmp), KAFKA_HEAP (512m). Plaintext on loopback only: production settings are in README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${KAFKA_PORT:-19092}"
controller="${KAFKA_CONTROLLER_PORT:-19093}"
data="${KAFKA_DATA:-/tmp/safety-stream-kafka-$port}"
heap="${KAFKA_HEAP:-512m}"
libs="$here/libs"

fetch() {
    if [ -f "$libs/.complete" ]; then return; fi
    mvn -q -B -ntp -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" >&2
    touch "$libs/.complete"
}

java_cmd() {  # call in a subshell or in the background: it becomes the java process
    exec java "-Xmx$heap" "-Xms$heap" -cp "$libs/*" "-Dlog4j.configuration=file:$here/log4j.properties" "$@"
}

start() {
    fetch
    mkdir -p "$data"
    cat > "$data/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPERTIES
    if [ ! -f "$data/logs/meta.properties" ]; then
        (java_cmd kafka.tools.StorageTool format --ignore-formatted \
            -t "$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
            -c "$data/server.properties" >"$data/format.log" 2>&1)
    fi
    java_cmd kafka.Kafka "$data/server.properties" >"$data/broker.log" 2>&1 </dev/null &
    echo $! >"$data/broker.pid"
    for _ in $(seq 1 120); do
        if python3 - "$port" <<'PY' 2>/dev/null
import socket, struct, sys
# An ApiVersions request (key 18, version 0): the broker answers once it serves clients.
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    body = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    reply = s.recv(size)
    sys.exit(0 if struct.unpack(">ih", reply[:6])[1] == 0 else 1)
PY
        then
            echo "127.0.0.1:$port"
            return
        fi
        if ! kill -0 "$(cat "$data/broker.pid")" 2>/dev/null; then
            echo "kafka exited; its log:" >&2; tail -40 "$data/broker.log" >&2; exit 1
        fi
        sleep 0.5
    done
    echo "kafka did not answer on 127.0.0.1:$port; its log:" >&2
    tail -40 "$data/broker.log" >&2
    exit 1
}

halt() {  # stop the broker process (SIGTERM: a clean shutdown), keep its data
    if [ -f "$data/broker.pid" ]; then
        pid="$(cat "$data/broker.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

stop() {
    halt
    rm -rf "$data"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    stop) stop ;;
    restart) halt; start ;;
    *) echo "usage: $0 fetch|start|stop|restart" >&2; exit 2 ;;
esac
