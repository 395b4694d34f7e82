// BullMQ 5 on the local Redis, measured as our engine is (bench/queue.sh, bench/workflows.sh):
// no-op jobs enqueued, then processed by one worker at a concurrency; and sequential
// three-step flows (a FlowProducer chain: step 1 is the leaf, step 3 the root, each step runs
// when the one below it completes), started, then driven by one worker. Completed jobs are
// removed (BullMQ's fastest setting); nothing is recorded outside Redis.
import { FlowProducer, Queue, Worker } from "bullmq";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const url = new URL(arg("--redis", "redis://127.0.0.1:6379"));
const connection = { host: url.hostname, port: Number(url.port || 6379) };
const jobs = Number(arg("--jobs", "20000"));
const runs = Number(arg("--runs", "2000"));
const concurrency = Number(arg("--concurrency", "50"));
const prefix = `ag_bench_bullmq_${process.pid}`;
// --keep: BullMQ's defaults, completed jobs kept (as our queue counts them in its stats only).
const opts = process.argv.includes("--keep") ? {} : { removeOnComplete: true, removeOnFail: 1000 };

function finished(worker, name, want) {
  return new Promise((resolve) => {
    let n = 0;
    worker.on("completed", (job) => {
      if (job.name === name && ++n === want) resolve();
    });
  });
}

async function noop() {
  const queue = new Queue("noop", { connection, prefix });
  const began = performance.now();
  for (let i = 0; i < jobs; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) batch.push({ name: "noop", data: { n: j }, opts });
    await queue.addBulk(batch);
  }
  const enqueued = performance.now();
  const worker = new Worker("noop", async () => {}, { connection, prefix, concurrency, autorun: false });
  const done = finished(worker, "noop", jobs);
  worker.run();
  await done;
  const end = performance.now();
  const s = (ms) => ms / 1000;
  console.log(
    `${jobs} no-op jobs: enqueued ${(jobs / s(enqueued - began)).toFixed(0)}/s, ` +
      `processed ${(jobs / s(end - enqueued)).toFixed(0)}/s, end to end ${(jobs / s(end - began)).toFixed(0)}/s`,
  );
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}

async function flows() {
  const flow = new FlowProducer({ connection, prefix });
  const began = performance.now();
  for (let i = 0; i < runs; i += 200) {
    const batch = [];
    for (let r = i; r < Math.min(runs, i + 200); r++) {
      const step = (k, children) => ({ name: `step${k}`, queueName: "flows", data: { run: r, step: k }, opts, children });
      batch.push(step(3, [step(2, [step(1)])]));
    }
    await flow.addBulk(batch);
  }
  const started = performance.now();
  // Each step reads its child's result, as a workflow step reads the one before it.
  const worker = new Worker(
    "flows",
    async (job) => {
      const before = await job.getChildrenValues();
      return { step: job.data.step, after: Object.keys(before).length };
    },
    { connection, prefix, concurrency, autorun: false },
  );
  const done = finished(worker, "step3", runs);
  worker.run();
  await done;
  const end = performance.now();
  const s = (ms) => ms / 1000;
  console.log(
    `${runs} three-step flows: started ${(runs / s(started - began)).toFixed(0)}/s, ` +
      `processed ${(runs / s(end - started)).toFixed(0)} runs/s, end to end ${(runs / s(end - began)).toFixed(0)} runs/s`,
  );
  await worker.close();
  const queue = new Queue("flows", { connection, prefix });
  await queue.obliterate({ force: true });
  await queue.close();
  await flow.close();
}

const which = arg("--only", "both");
if (which !== "flows") await noop();
if (which !== "noop") await flows();
process.exit(0);
