#!/usr/bin/env bash
# The fleet read of bench/fleet.sh, served by PostGraphile v5 instead of autoglue: the
# comparison's figure, measured the same way on the same machine.
#
# Seeds the same database as bench/fleet.sh (bench/seed-fleet.sh: autoglue migrates it and
# creates the 20 organizations, then the same SQL), stops autoglue, starts PostGraphile 5 with
# the amber preset on it (bench/postgraphile/server.mjs, Node.js 22 from its package.json,
# node-postgres without TLS), and POSTs the equivalent query with wrk: the first 50 clusters
# of one organization (oldest first, then by id, as autoglue's `clusters`), each with its
# node pools, their labels and servers (children by primary key, as autoglue's loaders), and
# the total count. No authentication: PostGraphile reads as the database owner, where
# autoglue checks a JWT and the membership. Prints requests/s, the latency distribution and
# the CPU time per request of the node process and of PostgreSQL.
#
#   bench/postgraphile.sh     (needs PostgreSQL and Redis as for scripts/test, wrk and npm)
#
# AG_BENCH_BIN, AG_BENCH_DURATION and AG_BENCH_CONNECTIONS as for bench/fleet.sh;
# AG_BENCH_PGL_PORT (default 18182) is PostGraphile's port, AG_BENCH_NODE its node binary.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${AG_BENCH_DURATION:-20s}"
CONNECTIONS="${AG_BENCH_CONNECTIONS:-32}"
PGL_PORT="${AG_BENCH_PGL_PORT:-18182}"
PGL_DIR=bench/postgraphile

# The pinned packages (package-lock.json), installed when missing or older than the lock.
if [ ! -x "$PGL_DIR/node_modules/.bin/node" ] || [ "$PGL_DIR/package-lock.json" -nt "$PGL_DIR/node_modules/.package-lock.json" ]; then
  echo "==> installing bench/postgraphile's packages"
  (cd "$PGL_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
NODE="${AG_BENCH_NODE:-$PWD/$PGL_DIR/node_modules/.bin/node}"

bench_cleanup() {
  [ -n "${PGL:-}" ] && kill "$PGL" 2>/dev/null && wait "$PGL" 2>/dev/null
  return 0
}
# The database, autoglue on it (SERVER), the admin's TOKEN, gql and the seeded fleet.
. bench/seed-fleet.sh

# autoglue only made the schema and the organizations: it must not take CPU from the run.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=

echo "==> $(cd "$PGL_DIR" && "$NODE" -p 'const v = (p) => require(`./node_modules/${p}/package.json`).version;
  `PostGraphile ${v("postgraphile")} (grafast ${v("grafast")}, grafserv ${v("grafserv")}, @dataplan/pg ${v("@dataplan/pg")}, pg ${v("pg")}) on Node.js ${process.version}`')"
(cd "$PGL_DIR" && DATABASE_URL="$DATABASE_URL" PORT="$PGL_PORT" exec "$NODE" server.mjs) >"$WORK/postgraphile.log" 2>&1 &
PGL=$!
until grep -q '^listening' "$WORK/postgraphile.log"; do
  kill -0 "$PGL" 2>/dev/null || { echo "bench: PostGraphile did not start:" >&2; cat "$WORK/postgraphile.log" >&2; exit 1; }
  sleep 0.2
done

ORG=$(psql "$PG/$DB" -Atc "select id from organizations order by id limit 1")
QUERY='query Fleet($org: UUID!) { allClusters(condition: {organizationId: $org}, first: 50, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) { totalCount nodes { id name status k3SVersion nodePoolsByClusterId(orderBy: PRIMARY_KEY_ASC) { nodes { id name role desiredSize nodePoolLabelsByNodePoolId(orderBy: PRIMARY_KEY_ASC) { nodes { key value } } serversByNodePoolId(orderBy: PRIMARY_KEY_ASC) { nodes { id hostname privateIp role status } } } } } } }'
BODY=$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "variables": {"org": sys.argv[2]}}))' "$QUERY" "$ORG")
curl -sf "http://127.0.0.1:$PGL_PORT/graphql" -H 'content-type: application/json' -d "$BODY" >"$WORK/response.json"
python3 - "$WORK/response.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("errors") or not d.get("data"):
    sys.exit(f"bench: PostGraphile answered {json.dumps(d)[:2000]}")
page = d["data"]["allClusters"]
pools = [p for c in page["nodes"] for p in c["nodePoolsByClusterId"]["nodes"]]
got = (len(page["nodes"]), len(pools),
       sum(len(p["serversByNodePoolId"]["nodes"]) for p in pools),
       sum(len(p["nodePoolLabelsByNodePoolId"]["nodes"]) for p in pools), page["totalCount"])
if got != (50, 150, 750, 300, 50):
    sys.exit(f"bench: expected 50 clusters, 150 pools, 750 servers, 300 labels, totalCount 50; got {got}")
PY
echo "==> response: $(wc -c <"$WORK/response.json") bytes (50 clusters, 150 pools, 750 servers, 300 labels)"

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$BODY]]
wrk.headers["Content-Type"] = "application/json"
LUA
measure_wrk "$PGL" "http://127.0.0.1:$PGL_PORT/graphql" "PostGraphile (node)"
