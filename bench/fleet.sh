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
# change the load.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoglue/target}"
PG="${AG_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
DB="ag_bench_$$"
PORT="${AG_BENCH_PORT:-18181}"
DURATION="${AG_BENCH_DURATION:-20s}"
CONNECTIONS="${AG_BENCH_CONNECTIONS:-32}"
WORK=$(mktemp -d)

command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  psql "$PG/postgres" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  redis-cli -u "${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern "ag_bench_$$*" 2>/dev/null \
    | xargs -r redis-cli -u "${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ -n "${AG_BENCH_BIN:-}" ]; then
  BIN="$AG_BENCH_BIN"   # a binary built before, to compare builds
else
  echo "==> building the release binary"
  cargo build --release -q --bin autoglue
  BIN="$CARGO_TARGET_DIR/release/autoglue"
fi

psql "$PG/postgres" -qc "create database $DB" >/dev/null
# No TLS on loopback: sqlx prefers TLS when the server offers it (Debian's does), which
# costs both processes CPU for nothing here; node-postgres, under the comparison's
# PostGraphile, does not use it unless told to.
export DATABASE_URL="$PG/$DB?sslmode=${AG_BENCH_SSLMODE:-disable}"
"$BIN" encrypt create-master --file "$WORK/master.key" >/dev/null
# PostgreSQL takes its job queue and event bus from Redis.
export REDIS_URL="${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" AUTOGLUE_REDIS_PREFIX="ag_bench_$$"
export AUTOGLUE_MASTER_KEY_FILE="$WORK/master.key" AUTOGLUE_LISTEN="127.0.0.1:$PORT"
export AUTOGLUE_ADMIN_USERNAME=bench AUTOGLUE_ADMIN_PASSWORD='bench bench bench' AUTOGLUE_LOG=warn
"$BIN" serve & SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.2; done

gql() { curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' ${TOKEN:+-H "Authorization: Bearer $TOKEN"} -d "$1"; }
TOKEN=$(gql '{"query":"mutation { login(input: {username: \"bench\", password: \"bench bench bench\"}) { accessToken } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
for i in $(seq -w 1 20); do
  gql "{\"query\":\"mutation { createOrganization(input: {name: \\\"org-$i\\\"}) { organization { id } } }\"}" >/dev/null
done

echo "==> seeding 20 x 50 clusters, 3 pools each, 5 servers per pool"
psql "$PG/$DB" -q <<'SQL'
insert into clusters (id, organization_id, name, status, k3s_version, created_at, updated_at)
  select gen_random_uuid(), o.id, 'c' || lpad(n::text, 3, '0'), 'ready', 'v1.31.4+k3s1', now(), now()
  from organizations o, generate_series(1, 50) n;
insert into node_pools (id, organization_id, cluster_id, name, role, desired_size, created_at, updated_at)
  select gen_random_uuid(), c.organization_id, c.id, 'pool-' || p, 'worker', 5, now(), now()
  from clusters c, generate_series(1, 3) p;
insert into node_pool_labels (id, organization_id, node_pool_id, key, value, created_at, updated_at)
  select gen_random_uuid(), np.organization_id, np.id, 'example.com/label-' || l, 'value-' || l, now(), now()
  from node_pools np, generate_series(1, 2) l;
insert into servers (id, organization_id, cluster_id, node_pool_id, hostname, private_ip, role, status,
                     ssh_user, ssh_port, created_at, updated_at)
  select gen_random_uuid(), np.organization_id, np.cluster_id, np.id,
         np.id::text || '-s' || s, '10.0.' || (s % 250) || '.' || s, 'worker', 'ready', 'root', 22, now(), now()
  from node_pools np, generate_series(1, 5) s;
analyze;
SQL

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
S0=$(ticks "$SERVER") P0=$(pg_ticks)
echo "==> wrk: $CONNECTIONS connections, $DURATION"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/graphql" \
  | tee "$WORK/wrk.out"
S1=$(ticks "$SERVER") P1=$(pg_ticks)
N=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
HZ=$(getconf CLK_TCK)
python3 -c 'import sys; n, hz, s, p = map(float, sys.argv[1:]); print(f"==> CPU per request: server {s * 1000 / hz / n:.2f} ms, PostgreSQL {p * 1000 / hz / n:.2f} ms")' \
  "$N" "$HZ" "$((S1 - S0))" "$((P1 - P0))"
if [ -n "${AG_BENCH_HOLD:-}" ]; then
  echo "==> holding the server on port $PORT (AG_BENCH_HOLD); Ctrl-C ends"
  echo "    token: $TOKEN"; echo "    org: $ORG"; echo "    body: $WORK/post.lua"
  wait "$SERVER"
fi
