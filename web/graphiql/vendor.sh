#!/usr/bin/env bash
# Refreshes the GraphiQL page's assets served by `autoglue` at /graphiql/assets/ (embedded in
# the binary by api/src/http/graphiql.rs): GraphiQL 4's browser build and React 18's, taken
# from the npm registry with `npm pack`, gzipped (the server sends them as they are, with
# `Content-Encoding: gzip`). Nothing is fetched at build or run time: the page works offline.
#
#   web/graphiql/vendor.sh            (needs npm; then rebuild and run the transport tests)
set -euo pipefail
cd "$(dirname "$0")"
GRAPHIQL=4.1.2 REACT=18.3.1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for pkg in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir -p "$work/$pkg" && tar xzf "$work/$pkg.tgz" -C "$work/$pkg"
done
# -n: no name or time stamp in the archive, so the same input gives the same bytes.
gzip -9 -n -c "$work/graphiql-$GRAPHIQL/package/graphiql.min.js" > graphiql.min.js.gz
gzip -9 -n -c "$work/graphiql-$GRAPHIQL/package/graphiql.min.css" > graphiql.min.css.gz
gzip -9 -n -c "$work/react-$REACT/package/umd/react.production.min.js" > react.production.min.js.gz
gzip -9 -n -c "$work/react-dom-$REACT/package/umd/react-dom.production.min.js" > react-dom.production.min.js.gz
cp "$work/graphiql-$GRAPHIQL/package/LICENSE" LICENSE.graphiql
cp "$work/react-$REACT/package/LICENSE" LICENSE.react
echo "GraphiQL $GRAPHIQL, React $REACT" > VERSIONS
ls -l ./*.gz
