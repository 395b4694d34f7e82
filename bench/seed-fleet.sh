# Sourced by bench/fleet.sh and bench/postgraphile.sh (bash, after `set -euo pipefail` and a
# cd to the repository): the fleet read's database and data, through autoglue itself.
#
# Creates a fresh PostgreSQL database, starts autoglue on it (`serve` migrates it), logs in as
# the admin, creates 20 organizations through GraphQL, then seeds 50 clusters x 3 node pools
# x 5 servers per organization (2 labels per pool) in SQL and analyzes. Leaves autoglue
# running, and sets:
#
#   PG DB DATABASE_URL PORT WORK BIN   where things are
#   SERVER                             autoglue's pid
#   TOKEN                              the admin's access token
#   gql BODY                           POSTs a GraphQL body to autoglue with the token
#
# An EXIT trap stops autoglue, drops the database, removes WORK and the run's Redis keys; a
# script that starts more processes defines bench_cleanup, which the trap calls first.
#
# AG_BENCH_BIN, AG_BENCH_PORT, AG_BENCH_POSTGRES_URL, AG_BENCH_REDIS_URL and AG_BENCH_SSLMODE
# are read here.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoglue/target}"
PG="${AG_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
DB="ag_bench_$$"
PORT="${AG_BENCH_PORT:-18181}"
WORK=$(mktemp -d)

command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
cleanup() {
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
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

# measure_wrk PID URL NAME: wrk with $WORK/post.lua against URL ($CONNECTIONS, $DURATION),
# then the CPU per request of process PID (called NAME) and of all PostgreSQL processes,
# from their clock ticks. The run holds /tmp/ag-bench.lock (flock(1), as the other
# benchmarks here take it), CPU readings included, since PostgreSQL is shared: one benchmark
# at a time on this machine.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { local t=0 p; for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p"))); done; echo "$t"; }
measure_wrk() {
  local pid=$1 url=$2 name=$3 s0 p0 s1 p1 n hz
  exec 9>>/tmp/ag-bench.lock
  flock 9
  s0=$(ticks "$pid") p0=$(pg_ticks)
  echo "==> wrk: $CONNECTIONS connections, $DURATION"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "$url" 9>&- | tee "$WORK/wrk.out"
  s1=$(ticks "$pid") p1=$(pg_ticks)
  flock -u 9; exec 9>&-
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  hz=$(getconf CLK_TCK)
  python3 -c 'import sys; name = sys.argv[1]; n, hz, s, p = map(float, sys.argv[2:]); print(f"==> CPU per request: {name} {s * 1000 / hz / n:.2f} ms, PostgreSQL {p * 1000 / hz / n:.2f} ms")' \
    "$name" "$n" "$hz" "$((s1 - s0))" "$((p1 - p0))"
}
