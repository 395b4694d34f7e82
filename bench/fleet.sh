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
# CPU time (clock ticks) of the server, and of all PostgreSQL processes, so the run can say
# what one request costs each of them.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { local t=0 p; for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p"))); done; echo "$t"; }
# One benchmark at a time on this machine: the run holds /tmp/ag-bench.lock (flock(1), as
# the other benchmarks here take it), CPU readings included, since PostgreSQL is shared.
exec 9>>/tmp/ag-bench.lock
flock 9
S0=$(ticks "$SERVER") P0=$(pg_ticks)
echo "==> wrk: $CONNECTIONS connections, $DURATION"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/graphql" 9>&- \
  | tee "$WORK/wrk.out"
S1=$(ticks "$SERVER") P1=$(pg_ticks)
flock -u 9; exec 9>&-
N=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
HZ=$(getconf CLK_TCK)
python3 -c 'import sys; n, hz, s, p = map(float, sys.argv[1:]); print(f"==> CPU per request: server {s * 1000 / hz / n:.2f} ms, PostgreSQL {p * 1000 / hz / n:.2f} ms")' \
  "$N" "$HZ" "$((S1 - S0))" "$((P1 - P0))"
if [ -n "${AG_BENCH_HOLD:-}" ]; then
  echo "==> holding the server on port $PORT (AG_BENCH_HOLD); Ctrl-C ends"
  echo "    token: $TOKEN"; echo "    org: $ORG"; echo "    body: $WORK/post.lua"
  wait "$SERVER"
fi
