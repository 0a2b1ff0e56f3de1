#!/usr/bin/env bash
# The README's curl examples, runnable: ./examples/curl.sh [base URL]   (default http://127.0.0.1:8080)
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}

echo "# 1. A query with variables, and a request id of your own"
curl -sS --fail-with-body "$BASE/graphql" \
  -H 'Content-Type: application/json' \
  -H 'X-Request-Id: readme-example-1' \
  -d '{"query":"query Active($p: ID!) { connections(projectId: $p, state: ACTIVE) { name service } }",
       "variables":{"p":"my-project"}}'
echo

echo "# 2. Automatic persisted queries: send the hash; register it once when unknown"
QUERY='{ connections(projectId: "my-project", state: ACTIVE) { name } }'
HASH=$(printf %s "$QUERY" | sha256sum | cut -d' ' -f1)
EXT="{\"persistedQuery\":{\"version\":1,\"sha256Hash\":\"$HASH\"}}"
curl -sS --fail-with-body -G "$BASE/graphql" --data-urlencode "extensions=$EXT"
echo
curl -sS --fail-with-body -G "$BASE/graphql" --data-urlencode "query=$QUERY" --data-urlencode "extensions=$EXT"
echo
curl -sS --fail-with-body -G "$BASE/graphql" --data-urlencode "extensions=$EXT"
echo

echo "# 3. What the service has counted"
curl -sS --fail-with-body "$BASE/metrics" | grep -E '^dli_graphql_(operations|upstream_requests)_total'
