#!/usr/bin/env bash
# Starts N server processes on one PostgreSQL and one bus, behind HAProxy (deploy/haproxy.cfg).
#
#   npm run build
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/relation_im deploy/cluster.sh 3
#
# Process i listens on BASE_PORT+i (default 8081, 8082, ...), HAProxy on LB_PORT (default 8080).
# Any other variable of docs/configuration.md is passed to every process (BUS, NATS_URL, CHAIN, ...).
# Ctrl-C (or SIGTERM) stops HAProxy and every process. Logs: $CLUSTER_DIR/p<i>.log, haproxy.log.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-3}"
BASE_PORT="${BASE_PORT:-8080}"
LB_PORT="${LB_PORT:-8080}"
CLUSTER_DIR="${CLUSTER_DIR:-./data/cluster}"
# How a process is started: the build by default; tests pass a tsx command to run the sources.
RUN="${RUN:-node --max-semi-space-size=64 dist/src/main.js}"

: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL every process shares}"
command -v haproxy >/dev/null || { echo "haproxy is not installed (Debian: apt-get install haproxy)" >&2; exit 2; }

export STORE=postgres BUS="${BUS:-nats}" HOST=127.0.0.1
# HAProxy connects from 127.0.0.1 and sends each client's address in a PROXY v2 header: believe it from
# there only. The rate limits count in one store for all processes: Redis with BUS=redis, else PostgreSQL.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1}"
if [ "$BUS" = redis ]; then export RATE_LIMIT_STORE="${RATE_LIMIT_STORE:-redis}"; else export RATE_LIMIT_STORE="${RATE_LIMIT_STORE:-postgres}"; fi
# An embedded chain would be a different chain in every process: none, unless CHAIN=rpc is given.
export CHAIN="${CHAIN:-none}"
# The archive is off unless asked for: the embedded Arweave gateway would be a different one in every
# process. With ARCHIVE_ENABLED=true and ARCHIVE_GATEWAY_URL (one real gateway), the fenced lease in
# PostgreSQL elects one archiver among the processes (docs/archive.md).
export ARCHIVE_ENABLED="${ARCHIVE_ENABLED:-false}"

mkdir -p "$CLUSTER_DIR"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

cfg="$CLUSTER_DIR/haproxy.cfg"
# The checked-in config with this run's ports and one server line per process.
while IFS= read -r line; do
  case "$line" in
    "    server p"[0-9]*) continue ;;
    "    bind 127.0.0.1:8080") echo "    bind 127.0.0.1:${LB_PORT}"; continue ;;
  esac
  printf '%s\n' "$line"
  case "$line" in
    "    # servers"*) for i in $(seq 1 "$N"); do echo "    server p$i 127.0.0.1:$((BASE_PORT + i))"; done ;;
  esac
done < deploy/haproxy.cfg > "$cfg"
for i in $(seq 1 "$N"); do
  port=$((BASE_PORT + i))
  mkdir -p "$CLUSTER_DIR/p$i"
  PORT="$port" DATA_DIR="$CLUSTER_DIR/p$i" $RUN > "$CLUSTER_DIR/p$i.log" 2>&1 &
  pids+=("$!")
  # The first process creates or migrates the schema; the others start once it listens.
  if [ "$i" = 1 ]; then
    for _ in $(seq 1 150); do
      curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
      kill -0 "${pids[0]}" 2>/dev/null || { echo "process 1 exited; see $CLUSTER_DIR/p1.log" >&2; tail -5 "$CLUSTER_DIR/p1.log" >&2; exit 1; }
      sleep 0.2
    done
  fi
done
haproxy -f "$cfg" -db > "$CLUSTER_DIR/haproxy.log" 2>&1 &
lb=$!
pids+=("$lb")
echo "$N processes on ports $((BASE_PORT + 1))-$((BASE_PORT + N)) behind http://127.0.0.1:$LB_PORT (logs in $CLUSTER_DIR)"
# A process that dies stays dead (HAProxy sends its clients elsewhere); the cluster ends with HAProxy.
wait "$lb" || true
