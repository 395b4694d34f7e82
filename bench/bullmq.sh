#!/usr/bin/env bash
# The reference figures of bench/queue.sh and bench/workflows.sh, measured on this machine:
# BullMQ 5 (bench/bullmq/bench.mjs) on the same local Redis, 20,000 no-op jobs enqueued then
# processed by one worker at concurrency 50, and 2,000 sequential three-step flows (a
# FlowProducer chain) started then driven the same way. Completed jobs are removed
# (BullMQ's fastest setting; --keep keeps them, its default).
#
#   bench/bullmq.sh                          (needs Redis on 127.0.0.1:6379 and Node.js 20+)
#   bench/bullmq.sh --concurrency 100 --runs 4000 --only flows
set -euo pipefail
cd "$(dirname "$0")/bullmq"
REDIS="${AG_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
[ "$(redis-cli -u "$REDIS" ping 2>/dev/null)" = PONG ] || { echo "bench: Redis does not answer at $REDIS" >&2; exit 1; }
[ -d node_modules/bullmq ] || npm ci --no-audit --no-fund >/dev/null
for run in $(seq 1 "${AG_BENCH_RUNS:-3}"); do
  echo "--- run $run"
  # Benchmarks on this machine never overlap (bench/fleet.sh and the others hold it too).
  flock /tmp/ag-bench.lock node bench.mjs --redis "$REDIS" "$@"
done
