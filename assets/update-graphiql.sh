#!/usr/bin/env bash
# Refreshes the GraphiQL page's third-party files in assets/graphiql/ from the npm
# registry. The binary embeds them (src/http/graphiql.rs), so the page loads nothing from
# outside the host. To move to other releases: change the versions below, run this
# script, bump GRAPHIQL_VERSION in src/http/graphiql.rs, and run the browser test
# (e2e/run.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

GRAPHIQL=3.9.0  # last GraphiQL line with a standalone (UMD) build
REACT=18.3.1    # React 19 ships no UMD build

out=graphiql
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for tarball in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
    pkg=${tarball%-*}
    mkdir -p "$tmp/$pkg"
    tar -xzf "$tmp/$tarball.tgz" -C "$tmp/$pkg"
done

cp "$tmp/graphiql/package/graphiql.min.js" "$tmp/graphiql/package/graphiql.min.css" "$out/"
cp "$tmp/react/package/umd/react.production.min.js" "$out/"
cp "$tmp/react-dom/package/umd/react-dom.production.min.js" "$out/"
cp "$tmp/graphiql/package/LICENSE" "$out/LICENSE.graphiql"
cp "$tmp/react/package/LICENSE" "$out/LICENSE.react"

cat >"$out/VERSIONS" <<VERSIONS
graphiql $GRAPHIQL
react $REACT
react-dom $REACT
VERSIONS
(cd "$out" && sha256sum graphiql.min.js graphiql.min.css react.production.min.js \
    react-dom.production.min.js >SHA256SUMS)
echo "assets/graphiql: graphiql $GRAPHIQL, react $REACT"
