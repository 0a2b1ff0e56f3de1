#!/usr/bin/env bash
# End-to-end checks against a real `dli-graphql --demo` on a loopback port:
#   - GraphiQL in headless Chromium (Debian's package, driven by playwright-core), with
#     every non-loopback request blocked; screenshot at target/graphiql.png
#   - subscriptions through the npm clients graphql-ws, graphql-sse and Apollo Client 4
#     (multipart over its HttpLink)
#   - the README's client examples: examples/node (graphql-request) and examples/curl.sh
#   - the `healthcheck` subcommand against the live server
# Installs what it needs when missing (chromium, npm packages from the lockfiles).
# Everything stops by itself: the server is killed on exit, each step has a time limit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export APOLLO_TELEMETRY_DISABLED=true

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
chromium --version

echo "== npm ci (e2e, examples/node)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked --quiet --bin dli-graphql
bin=target/debug/dli-graphql
log=target/e2e-server.log

# Port 0: the server picks a free port and logs it.
# With the access log (debug), so that the README's request id can be found in it below.
RUST_LOG=info,dli_graphql=debug "$bin" --demo --listen 127.0.0.1:0 --watch-interval 1s --log-format json >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 100); do
    base=$(grep -o '"message":"GraphQL at http://127\.0\.0\.1:[0-9]*' "$log" | grep -o 'http://.*' || true)
    [ -n "$base" ] && break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "the demo server did not start:" >&2
    cat "$log" >&2
    exit 1
fi
listen=${base#http://}
sim=$(grep -o '"simulator":"http://127\.0\.0\.1:[0-9]*' "$log" | grep -o 'http://.*' | head -1)
echo "== demo server at $base (simulator at $sim)"

echo "== healthcheck subcommand"
"$bin" --listen "$listen" healthcheck
echo "healthy: exit 0"

echo "== GraphiQL in Chromium"
(cd e2e && DLI_GRAPHQL_URL="$base" DLI_SIM_URL="$sim" SCREENSHOT=../target/graphiql.png timeout 180 node --test graphiql.test.mjs)

echo "== subscriptions: graphql-ws, graphql-sse, Apollo Client"
(cd e2e && DLI_GRAPHQL_URL="$base" DLI_SIM_URL="$sim" WATCH_INTERVAL_MS=1000 \
    timeout 120 node --test subscriptions.test.mjs apollo.test.mjs)

echo "== examples/node (graphql-request)"
out=$(cd examples/node && timeout 60 node connections.mjs "$base/graphql" my-project)
echo "$out"
grep -q "active connections in project my-project" <<<"$out"
if err=$(cd examples/node && timeout 60 node connections.mjs "$base/graphql" fault-403 2>&1); then
    echo "a refused project should fail the example" >&2
    exit 1
fi
echo "$err"
grep -q "^FORBIDDEN: " <<<"$err"

echo "== examples/curl.sh"
out=$(timeout 60 ./examples/curl.sh "$base")
echo "$out"
grep -q '"code":"PERSISTED_QUERY_NOT_FOUND"' <<<"$out"
[ "$(grep -c '"name":"dws_conn_1"' <<<"$out")" -eq 3 ] # the plain query, registration, hash alone
grep -q '^dli_graphql_upstream_requests_total{outcome="ok"' <<<"$out"

# The request id the README sends shows up in the server's access log.
grep -q '"request_id":"readme-example-1"' "$log"

echo "e2e: 6 passed, 0 failed"
