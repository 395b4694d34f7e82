#!/usr/bin/env bash
# Redis queue benchmark: no-op jobs through workflows::queue::redis.
#
# Enqueues 20,000 jobs (enqueue_many: 500 per Lua call, 4 calls per round trip), then runs
# them with one worker at concurrency 50 (batch 50), all in one release-built process
# (workflows/examples/queue_bench.rs), against the local Redis. Prints enqueue, processing and
# end-to-end jobs/s for each of AG_BENCH_RUNS runs (default 3). Each run uses a namespace of its
# own and deletes it after.
#
#   bench/queue.sh                     (needs Redis on 127.0.0.1:6379, as for scripts/test)
#   AG_BENCH_JOBS=50000 AG_BENCH_CONCURRENCY=100 AG_BENCH_BATCH=100 bench/queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoglue/target}"
REDIS="${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
JOBS="${AG_BENCH_JOBS:-20000}"
CONCURRENCY="${AG_BENCH_CONCURRENCY:-50}"
BATCH="${AG_BENCH_BATCH:-50}"
RUNS="${AG_BENCH_RUNS:-3}"

[ "$(redis-cli -u "$REDIS" ping 2>/dev/null)" = PONG ] || { echo "bench: Redis does not answer at $REDIS" >&2; exit 1; }

echo "==> building the release benchmark"
cargo build --release -q -p workflows --example queue_bench
BIN="$CARGO_TARGET_DIR/release/examples/queue_bench"

echo "==> load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for run in $(seq 1 "$RUNS"); do
  echo "--- run $run"
  "$BIN" --redis "$REDIS" --jobs "$JOBS" --concurrency "$CONCURRENCY" --batch "$BATCH"
done
echo "==> load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
