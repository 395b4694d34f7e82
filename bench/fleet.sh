#!/usr/bin/env bash
# Fleet read benchmark: the first 50 clusters of one organization with their node pools,
# the pools' labels and servers, as one GraphQL query authenticated by a JWT.
#
# Seeds 20 organizations x 50 clusters x 3 pools x 5 servers (2 labels per pool) into a fresh
# PostgreSQL database, starts a release build of autoglue on it, and runs wrk with 32
# connections for 20 s beside it. Prints requests/s and the latency distribution.
#
#   bench/fleet.sh            (needs PostgreSQL and Redis as for scripts/test, and wrk)
#
# AG_BENCH_BIN=path runs that binary instead of building one; AG_BENCH_HOLD=1 keeps the
# server up after the run (for a profiler); AG_BENCH_DURATION and AG_BENCH_CONNECTIONS
# change the load. The database and the seeding are bench/seed-fleet.sh's, shared with
# bench/postgraphile.sh; the run itself holds /tmp/ag-bench.lock, so benchmarks on this
# machine do not overlap.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${AG_BENCH_DURATION:-20s}"
CONNECTIONS="${AG_BENCH_CONNECTIONS:-32}"
# The database, autoglue on it (SERVER), the admin's TOKEN, gql and the seeded fleet.
. bench/seed-fleet.sh

ORG=$(gql '{"query":"{ organizations(first: 1) { edges { node { id } } } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["organizations"]["edges"][0]["node"]["id"])')
QUERY='{ clusters(first: 50) { totalCount edges { node { id name status k3sVersion nodePools { id name role desiredSize labels { key value } servers { id hostname privateIp role status } } } } } }'
BODY=$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$QUERY")
SIZE=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "Authorization: Bearer $TOKEN" -H "X-Org-ID: $ORG" -d "$BODY" | wc -c)
echo "==> response: $SIZE bytes"

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["X-Org-ID"] = "$ORG"
LUA
measure_wrk "$SERVER" "http://127.0.0.1:$PORT/graphql" server
if [ -n "${AG_BENCH_HOLD:-}" ]; then
  echo "==> holding the server on port $PORT (AG_BENCH_HOLD); Ctrl-C ends"
  echo "    token: $TOKEN"; echo "    org: $ORG"; echo "    body: $WORK/post.lua"
  wait "$SERVER"
fi
