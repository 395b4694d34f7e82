#!/usr/bin/env bash
# Three-step workflows per second through the engine: 2,000 runs of test.three_steps started
# (run + step rows inserted, task enqueued), then driven by one worker at concurrency 50 on the
# Redis queue, with PostgreSQL recording every step (running, then succeeded with output).
# Everything in one release-built process (workflows/examples/flow_bench.rs) on a fresh
# database, dropped after, with the Redis keys.
#
#   bench/workflows.sh              (needs PostgreSQL and Redis as for scripts/test)
#   AG_BENCH_RUNS=5000 AG_BENCH_CONCURRENCY=100 bench/workflows.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoglue/target}"
# No TLS on loopback (as in bench/fleet.sh): sqlx prefers TLS when the server offers it,
# which costs both processes CPU for nothing here.
PG="${AG_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=${AG_BENCH_SSLMODE:-disable}}"
REDIS="${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"

echo "==> building the release benchmark"
cargo build --release -q -p workflows --example flow_bench
echo "==> load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$CARGO_TARGET_DIR/release/examples/flow_bench" --postgres "$PG" --redis "$REDIS" \
  --runs "${AG_BENCH_RUNS:-2000}" --concurrency "${AG_BENCH_CONCURRENCY:-50}"
