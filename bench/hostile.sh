#!/usr/bin/env bash
# Hostile mix: normal clients alone, then the same normal clients beside an attack on the
# front door: slowloris sockets (a header line a second, never finished), a connection flood
# (sockets held without a byte, reopened whenever the server closes them) above
# --max-connections, and a noisy caller over its --client-rate. Reports the normal clients'
# requests, errors and p50/p99 in both phases, what the attackers saw, the front-door
# metrics, and the facade's peak RSS and open file descriptors. Exits non-zero when a normal
# client saw an error under attack or its p99 more than doubled.
#
#   bench/hostile.sh                   # 30 s per phase, release build
#   env: DURATION CLIENTS RATE SLOW FLOOD MAX_CONNECTIONS CLIENT_RATE PROFILE(release|dev)
#
# Needs python3 only. Loopback only; every process it starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-30}            # seconds per phase
CLIENTS=${CLIENTS:-16}              # normal clients, one API key each
RATE=${RATE:-20}                    # requests a second per normal client
SLOW=${SLOW:-200}                   # slowloris sockets
FLOOD=${FLOOD:-1500}                # flood sockets (more than MAX_CONNECTIONS)
MAX_CONNECTIONS=${MAX_CONNECTIONS:-1024}
CLIENT_RATE=${CLIENT_RATE:-50/s}
PROFILE=${PROFILE:-release}
command -v python3 >/dev/null || { echo "hostile: python3 is needed" >&2; exit 2; }

cargo build --quiet --locked --profile "$PROFILE" --bin dli-graphql --bin dli-sim
dir=target/$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")
out=bench/results/hostile-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port=$(free_port)
port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

keys=$(python3 -c "print(','.join(['normal-%d' % i for i in range($CLIENTS)] + ['noisy']))")
"$dir/dli-sim" --listen "127.0.0.1:$sim_port" 2>"$out/sim.log" &
pids+=($!)
RUST_LOG=${RUST_LOG:-warn} "$dir/dli-graphql" --listen "127.0.0.1:$port" \
    --endpoint "http://127.0.0.1:$sim_port" --auth-token hostile-token --api-keys "$keys" \
    --client-rate "$CLIENT_RATE" --max-connections "$MAX_CONNECTIONS" 2>"$out/facade.log" &
facade=$!
pids+=("$facade")
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

( peak_rss=0; peak_fd=0
  while kill -0 "$facade" 2>/dev/null; do
      r=$(awk '/^VmRSS/ { print $2 }' "/proc/$facade/status" 2>/dev/null || echo 0)
      f=$(ls "/proc/$facade/fd" 2>/dev/null | wc -l)
      (( r > peak_rss )) && peak_rss=$r
      (( f > peak_fd )) && peak_fd=$f
      echo "$peak_rss $peak_fd" >"$out/peak"
      sleep 0.25
  done ) &
pids+=($!)

echo "hostile: phase 1, $CLIENTS normal clients at $RATE req/s each for ${DURATION}s"
python3 bench/hostile.py normal 127.0.0.1 "$port" "$DURATION" "$CLIENTS" "$RATE" normal- "$out/normal-alone.json"
echo "hostile: phase 2, the same beside $SLOW slowloris sockets, a $FLOOD-socket flood and a noisy caller"
python3 bench/hostile.py normal 127.0.0.1 "$port" "$DURATION" "$CLIENTS" "$RATE" normal- "$out/normal-attacked.json" &
normal=$!
pids+=("$normal")
sleep 1
# The noisy caller connects before the flood fills the connection slots.
python3 bench/hostile.py noisy 127.0.0.1 "$port" "$((DURATION - 3))" noisy "$out/noisy.json" &
noisy=$!
pids+=("$noisy")
sleep 1
python3 bench/hostile.py sockets 127.0.0.1 "$port" "$((DURATION - 4))" "$SLOW" "$FLOOD" "$out/sockets.json"
wait "$noisy"
wait "$normal"
sleep 1
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^dli_graphql_(connections|requests_shed|requests_rate_limited)' >"$out/metrics.txt" || true
alive=1; kill -0 "$facade" 2>/dev/null || alive=0

python3 - "$out" "$alive" <<'PY'
import json, sys
out, alive = sys.argv[1], int(sys.argv[2])
a = json.load(open(f"{out}/normal-alone.json"))
b = json.load(open(f"{out}/normal-attacked.json"))
atk = json.load(open(f"{out}/sockets.json"))
atk.update(json.load(open(f"{out}/noisy.json")))
rss, fds = (open(f"{out}/peak").read().split() + ["0", "0"])[:2]
fmt = lambda r: f"{r['requests']} requests, errors {json.dumps(r['errors'])}, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms"
lines = [
    f"normal clients alone:        {fmt(a)}",
    f"normal clients under attack: {fmt(b)}",
    f"attackers saw: {json.dumps(atk, sort_keys=True)}",
    "front-door metrics: " + "; ".join(l.strip() for l in open(f"{out}/metrics.txt")),
    f"facade peak RSS {rss} KiB, peak open fds {fds}, alive at the end: {bool(alive)}",
]
print("\n".join(lines))
open(f"{out}/report.txt", "w").write("\n".join(lines) + "\n")
errors = sum(b["errors"].values())
ok = alive and errors == 0 and b["p99_ms"] <= 2 * a["p99_ms"]
print("hostile: PASS" if ok else "hostile: FAIL (errors under attack, p99 more than doubled, or the facade died)")
sys.exit(0 if ok else 1)
PY
