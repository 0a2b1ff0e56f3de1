#!/usr/bin/env bash
# Soak: 64 concurrent clients (oha) for a bounded time against dli-graphql pointed at the DLI
# simulator with ~10% injected faults (500s, 429s with Retry-After, 2 s slow answers,
# malformed bodies). Reports requests, answers by HTTP status, GraphQL errors by code (from
# a sequential sampler running beside the load), facade restarts, facade 5xx, and peak and
# final RSS against the level after warm-up. Exits non-zero when the facade died, answered
# any 5xx, or its final RSS is more than 10% above the post-warm-up level.
#
#   bench/soak.sh                      # 60 s after a 15 s warm-up, release build
#   DURATION=10m bench/soak.sh         # longer
#   env: DURATION WARMUP CONCURRENCY FAULT_RATE PROFILE(release|dev) OHA
#
# Needs oha (cargo install oha --version 1.16.0 --locked) and python3. Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-60s}
WARMUP=${WARMUP:-15s}
CONCURRENCY=${CONCURRENCY:-64}
FAULT_RATE=${FAULT_RATE:-0.1}
PROFILE=${PROFILE:-release}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
if [[ ! -x "$OHA" ]]; then
    echo "soak: oha not found; install it with: cargo install oha --version 1.16.0 --locked" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "soak: python3 is needed for the report" >&2; exit 2; }

cargo build --quiet --locked --profile "$PROFILE" --bin dli-graphql --bin dli-sim
dir=target/$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")
out=bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port=$(free_port)
port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$dir/dli-sim" --listen "127.0.0.1:$sim_port" --fault-rate "$FAULT_RATE" 2>"$out/sim.log" &
pids+=($!)
RUST_LOG=${RUST_LOG:-warn} "$dir/dli-graphql" --listen "127.0.0.1:$port" \
    --endpoint "http://127.0.0.1:$sim_port" 2>"$out/facade.log" &
facade=$!
pids+=("$facade")
url="http://127.0.0.1:$port/graphql"
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# Two projects per request (two upstream calls), filters on one of them.
query='{"query":"{ a: connections(projectId: \"soak-a\") { connectionId name state service createTime } b: connections(projectId: \"soak-b\", state: ACTIVE) { name queues } }"}'
load() {
    "$OHA" --no-tui -z "$1" -c "$CONCURRENCY" --wait-ongoing-requests-after-deadline -m POST -T application/json \
        -H "X-Auth-Token: soak-token" -d "$query" --output-format json "$url"
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$facade/status" 2>/dev/null || echo 0; }

echo "soak: warm-up $WARMUP at $CONCURRENCY clients, fault rate $FAULT_RATE"
load "$WARMUP" >"$out/warmup.json"
sleep 2
rss_warm=$(rss_kib)

echo "soak: $DURATION at $CONCURRENCY clients"
( peak=0; while kill -0 "$facade" 2>/dev/null; do r=$(rss_kib); (( r > peak )) && peak=$r && echo "$peak" >"$out/peak"; sleep 0.5; done ) &
pids+=($!)
python3 - "$url" "$out/sample.json" "$DURATION" <<'PY' &
import json, sys, time, urllib.request, urllib.error
url, dest, duration = sys.argv[1], sys.argv[2], sys.argv[3]
unit = {"s": 1, "m": 60, "h": 3600}
seconds = float(duration[:-1]) * unit[duration[-1]] if duration[-1] in unit else float(duration)
body = json.dumps({"query": "{ a: connections(projectId: \"soak-a\") { name } b: connections(projectId: \"soak-b\") { name } }"}).encode()
statuses, codes, n = {}, {}, 0
end = time.time() + seconds
while time.time() < end:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "X-Auth-Token": "soak-token"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    except Exception as e:
        status, payload = type(e).__name__, b"{}"
    n += 1
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    try:
        for err in json.loads(payload).get("errors", []):
            code = (err.get("extensions") or {}).get("code", "(none)")
            codes[code] = codes.get(code, 0) + 1
    except ValueError:
        codes["(unparsable body)"] = codes.get("(unparsable body)", 0) + 1
json.dump({"responses": n, "statuses": statuses, "codes": codes}, open(dest, "w"))
PY
sampler=$!
load "$DURATION" >"$out/soak.json"
wait "$sampler" || true
sleep 2
rss_final=$(rss_kib)
alive=1; kill -0 "$facade" 2>/dev/null || alive=0
sim_calls=$(curl -fsS "http://127.0.0.1:$sim_port/__sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])' || echo "?")

python3 - "$out" "$rss_warm" "$(cat "$out/peak" 2>/dev/null || echo 0)" "$rss_final" "$alive" "$sim_calls" \
    "$DURATION" "$CONCURRENCY" "$FAULT_RATE" <<'PY'
import json, sys
out, warm, peak, final, alive, sim_calls, duration, conc, rate = sys.argv[1:]
warm, peak, final, alive = int(warm), int(peak), int(final), int(alive)
r = json.load(open(f"{out}/soak.json"))
s = json.load(open(f"{out}/sample.json"))
dist = r.get("statusCodeDistribution", {})
errors = r.get("errorDistribution", {})
requests = sum(dist.values()) + sum(errors.values())
fivexx = sum(n for code, n in dist.items() if code.startswith("5"))
growth = (final - warm) / warm * 100 if warm else 0.0
lines = [
    f"soak: {duration} at {conc} concurrent clients, simulator fault rate {rate}",
    f"requests: {requests} ({r['summary'].get('requestsPerSec', 0):.0f}/s), upstream calls seen by the simulator (warm-up included): {sim_calls}",
    f"answers by HTTP status: {json.dumps(dist, sort_keys=True)}" + (f", client-side errors: {json.dumps(errors)}" if errors else ""),
    f"latency ms: p50 {r['latencyPercentiles']['p50']*1000:.1f}, p99 {r['latencyPercentiles']['p99']*1000:.1f}, max {r['summary']['slowest']*1000:.1f}",
    f"GraphQL errors by code (in {s['responses']} sampled responses, statuses {json.dumps(s['statuses'], sort_keys=True)}): {json.dumps(s['codes'], sort_keys=True)}",
    f"facade restarts: {0 if alive else 1}; facade 5xx: {fivexx}",
    f"RSS KiB: after warm-up {warm}, peak {peak}, final {final} ({growth:+.1f}% vs after warm-up)",
]
ok = alive and fivexx == 0 and not errors and growth <= 10.0
lines.append("soak: PASS" if ok else "soak: FAIL")
report = "\n".join(lines)
print(report)
open(f"{out}/report.txt", "w").write(report + "\n")
sys.exit(0 if ok else 1)
PY
