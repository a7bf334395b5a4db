'use strict';
// The BullMQ peer's worker (../shared/peers/bullmq/worker.js) with `hello greet`'s work in its
// processor instead of a no-op, for a like-for-like row in scripts/bench-peer.sh: two log
// lines (job.log), two progress updates (job.updateProgress) and one stored file, written
// beside and renamed into place as Vidfarm's local object store does. The connection,
// concurrency and shutdown are the peer's own; scripts/bench-peer.sh runs it through the
// peer's run.sh with this file as worker.js. GREET_OBJECTS_DIR: where files go.

const fs = require('node:fs/promises');
const path = require('node:path');
const { Worker } = require('bullmq');
const { QUEUE_NAME, redisConnection } = require('./config');

const concurrency = Number(process.env.WORKER_CONCURRENCY || 8);
const objects = process.env.GREET_OBJECTS_DIR || path.join(require('node:os').tmpdir(), `peer-greet-${process.pid}`);
const connection = redisConnection();

async function greet(job) {
  const name = String((job.data.payload && job.data.payload.name) || '');
  await job.log(JSON.stringify({ level: 'info', message: 'greeting someone', name }));
  const greeting = `Hello, ${name}!`;
  await job.updateProgress({ fraction: 0.5, message: 'greeting composed' });
  const key = `jobs/${job.id}/greeting.txt`;
  const file = path.join(objects, key);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(`${file}.partial`, greeting);
  await fs.rename(`${file}.partial`, file);
  await job.log(JSON.stringify({ level: 'info', message: 'greeting stored', key, size: Buffer.byteLength(greeting) }));
  await job.updateProgress({ fraction: 1, message: 'done' });
  return { greeting };
}

const worker = new Worker(QUEUE_NAME, greet, { connection, concurrency });

worker.on('ready', () => {
  console.error(`[worker] ready (queue ${QUEUE_NAME}, concurrency ${concurrency}, greet, files in ${objects})`);
  if (process.env.WORKER_READY_FILE) require('node:fs').writeFileSync(process.env.WORKER_READY_FILE, 'ready\n');
});
worker.on('failed', (job, err) => console.error(`[worker] job ${job && job.id} failed: ${err && err.message}`));
worker.on('error', (err) => console.error('[worker] error:', err && err.message));

let closing = false;
async function shutdown(signal) {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(0), 5000).unref();
  try {
    await worker.close();
    await connection.quit();
  } catch (_) {
    // redis may already be gone during teardown
  }
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
