#!/usr/bin/env bash
# bench/run.sh - the project's own benchmark: the release service against the dli-sim simulator.
#
# Builds both binaries in release mode, then runs, each scenario with a fresh service process:
#   W1-W3   the harness workloads (bench/queries, N=50 connections per project): `lean`, with
#           --no-compression --no-coalesce (the work of a hand-written proxy: W2 = 1, W3 = 5
#           upstream calls per request), and `default` (compressing as oha asks, coalescing
#           across concurrent requests). The hand-written floor itself runs in the benchmark
#           harness's compare.sh (docs/performance.md), whose upstream it is written for.
#   L       one project with 20,000 connections, filtered to a few hundred; 1 client, then
#           CONCURRENCY clients
#   hot     W1 with the simulator answering after 5 ms: --no-coalesce, the defaults, and
#           --cache-ttl 1s
# and prints one row per run: requests/s, p50/p99 latency, errors, upstream calls per request
# (from the simulator's GET /__sim/stats) and the service's peak RSS so far (VmHWM).
#
# Environment (defaults): DURATION=10 measured seconds per run, WARMUP=2, CONCURRENCY=32,
#   SIM_PORT=19200, SVC_PORT=18080, BUILD=1 (0: use the existing target/release binaries),
#   SCENARIOS="standard large hot", RESULTS_DIR=bench/results, OHA (PATH, then ~/.cargo/bin/oha).
# The load generator is oha (cargo install oha --version 1.16.0 --locked). Everything talks over
# 127.0.0.1 only; every load run is bounded (oha -z plus a timeout backstop); every process this
# script starts is stopped by PID on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
LIB="$HERE/benchlib.py"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONCURRENCY="${CONCURRENCY:-32}"
SIM_PORT="${SIM_PORT:-19200}"
SVC_PORT="${SVC_PORT:-18080}"
BUILD="${BUILD:-1}"
SCENARIOS="${SCENARIOS:-standard large hot}"
RESULTS_DIR="${RESULTS_DIR:-$HERE/results}"
TOKEN="bench-token"
SIM_URL="http://127.0.0.1:$SIM_PORT"
SVC_URL="http://127.0.0.1:$SVC_PORT"

if [ -z "${OHA:-}" ]; then
  if command -v oha >/dev/null 2>&1; then OHA=oha
  elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/oha" ]; then OHA="${CARGO_HOME:-$HOME/.cargo}/bin/oha"
  else echo "run.sh: oha not found (cargo install oha --version 1.16.0 --locked)" >&2; exit 1; fi
fi

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$SIM_PORT" "$SVC_PORT"; do
  if port_busy "$port"; then echo "run.sh: port $port is in use; set SIM_PORT/SVC_PORT" >&2; exit 1; fi
done

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --locked --bins)
fi
SIM_BIN="$ROOT/target/release/dli-sim"
SVC_BIN="$ROOT/target/release/dli-graphql"
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

wait_http() { # URL SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not answer within $2 s" >&2
  exit 1
}

stop() { # PID
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

SIM_PID=""
SVC_PID=""
start_sim() { # CONNECTIONS DELAY_MS
  [ -z "$SIM_PID" ] || stop "$SIM_PID"
  "$SIM_BIN" --listen "127.0.0.1:$SIM_PORT" --connections "$1" --delay-ms "$2" \
    2>>"$RESULTS_DIR/$STAMP-sim.log" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_http "$SIM_URL/__sim/stats" 20
}

start_svc() { # extra service flags...
  [ -z "$SVC_PID" ] || stop "$SVC_PID"
  "$SVC_BIN" --listen "127.0.0.1:$SVC_PORT" --endpoint "$SIM_URL" "$@" 2>>"$RESULTS_DIR/$STAMP-service.log" &
  SVC_PID=$!
  PIDS+=("$SVC_PID")
  wait_http "$SVC_URL/healthz" 20
}

run_oha() { # OUT SECONDS CONCURRENCY BODY
  timeout --signal=INT --kill-after=5 "$(($2 + 30))" \
    "$OHA" --no-tui --output-format json -z "${2}s" -c "$3" --wait-ongoing-requests-after-deadline \
    -m POST -T application/json -H "X-Auth-Token: $TOKEN" -D "$4" "$SVC_URL/graphql" >"$1"
}

row() { printf '%-12s %-5s %4s %9s %8s %8s %6s %8s %10s %8s %7s\n' "$@"; }

measure() { # LABEL WORKLOAD CONCURRENCY
  local label="$1" w="$2" c="$3" body="$HERE/queries/${2%%-*}.json" n out before after
  [ "$w" = hot ] && body="$HERE/queries/W1.json"
  # Correctness first: one request, no GraphQL errors, every alias a list.
  n="$(curl -fsS -m 30 -H 'Content-Type: application/json' -H "X-Auth-Token: $TOKEN" \
    --data-binary "@$body" "$SVC_URL/graphql" | python3 "$LIB" check)" \
    || { echo "run.sh: $label $w: wrong answer" >&2; exit 1; }
  run_oha /dev/null "$WARMUP" "$c" "$body" || true
  before="$(python3 "$LIB" calls "$SIM_URL")"
  out="$RESULTS_DIR/$STAMP-$label-$w-c$c.json"
  run_oha "$out" "$DURATION" "$c" "$body"
  after="$(python3 "$LIB" calls "$SIM_URL")"
  read -r rps p50 p99 errs reqs < <(python3 "$LIB" oha "$out")
  local cpr
  cpr="$(python3 -c 'import sys; b, a, n = map(float, sys.argv[1:]); print("%.3f" % ((a - b) / n) if n else "nan")' \
    "$before" "$after" "$reqs")"
  row "$label" "$w" "$c" "$rps" "$p50" "$p99" "$errs" "$reqs" "$cpr" "$(python3 "$LIB" rss "$SVC_PID")" "$n"
}

echo "# bench/run.sh $(date -u '+%Y-%m-%d %H:%M:%S UTC')  host: $(nproc) cores, $(uname -sr)"
echo "# $("$OHA" --version), $(rustc --version | cut -d' ' -f1-2), duration=${DURATION}s warmup=${WARMUP}s"
row label run c rps p50_ms p99_ms errors requests up_calls/req rss_MiB entries

for scenario in $SCENARIOS; do
  case "$scenario" in
    standard)
      start_sim 50 0
      start_svc --no-compression --no-coalesce
      for w in W1 W2 W3; do measure lean "$w" "$CONCURRENCY"; done
      start_svc
      for w in W1 W2 W3; do measure default "$w" "$CONCURRENCY"; done
      ;;
    large)
      start_sim 20000 0
      start_svc
      measure default L 1
      measure default L "$CONCURRENCY"
      ;;
    hot)
      start_sim 50 5
      start_svc --no-coalesce
      measure no-coalesce hot "$CONCURRENCY"
      start_svc
      measure default hot "$CONCURRENCY"
      start_svc --cache-ttl 1s
      measure cache-1s hot "$CONCURRENCY"
      ;;
    *) echo "run.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
