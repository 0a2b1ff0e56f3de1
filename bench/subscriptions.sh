#!/usr/bin/env bash
# bench/subscriptions.sh - many WebSocket subscribers against the release service.
#
# Starts dli-sim and the service (release builds; --watch-interval 1s), then
# subscriptions/subscribers.mjs opens SUBSCRIBERS graphql-transport-ws sockets spread over
# PROJECTS projects and prints: upstream polls per interval (target: PROJECTS), resident
# memory per subscriber (target: 20 KiB or less) and the delay from the poll that saw a
# change to each subscriber's event (target: p99 50 ms or less). Not a test: figures go to
# docs/subscriptions.md with their date.
#
# Environment (defaults): SUBSCRIBERS=1000, PROJECTS=10, MEASURE_S=10, ROUNDS=5,
#   SIM_PORT=19300, SVC_PORT=18180, BUILD=1 (0: use the existing binaries in BIN, default
#   target/release).
# Everything talks over 127.0.0.1 only; every process this script starts is stopped by PID.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SIM_PORT="${SIM_PORT:-19300}"
SVC_PORT="${SVC_PORT:-18180}"
BUILD="${BUILD:-1}"
BIN="${BIN:-$ROOT/target/release}"
export APOLLO_TELEMETRY_DISABLED=true

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --locked --bins)
fi
(cd "$HERE/subscriptions" && npm ci --no-audit --no-fund --loglevel=error)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$BIN/dli-sim" --listen "127.0.0.1:$SIM_PORT" 2>/dev/null &
pids+=($!)
"$BIN/dli-graphql" --endpoint "http://127.0.0.1:$SIM_PORT" --listen "127.0.0.1:$SVC_PORT" \
  --watch-interval 1s --max-streams 100000 --max-watched-projects 1000 2>/dev/null &
svc=$!
pids+=("$svc")
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$SVC_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

SERVICE_URL="http://127.0.0.1:$SVC_PORT" SIM_URL="http://127.0.0.1:$SIM_PORT" SERVICE_PID="$svc" INTERVAL_S=1 \
  timeout 300 node "$HERE/subscriptions/subscribers.mjs"
echo "service peak RSS (VmHWM): $(grep VmHWM "/proc/$svc/status" | awk '{print $2, $3}')"
