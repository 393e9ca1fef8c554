// Entry point of the scan worker thread: one job at a time from the main thread, answered with
// its static verdict. Started by worker-pool.ts as compiled .js (dist/) or as .ts under tsx.

import { parentPort } from 'node:worker_threads';
import { staticScan } from './static-scan.js';
import type { WorkerReply, WorkerRequest } from './types.js';

if (!parentPort) throw new Error('scan-worker.js runs as a worker thread (see worker-pool.ts)');
const port = parentPort;
port.on('message', (req: WorkerRequest) => {
  staticScan(req.job).then(
    (verdict) => port.postMessage({ id: req.id, verdict } satisfies WorkerReply),
    (err: unknown) => {
      const reason = `worker_error:${(err as Error)?.message ?? String(err)}`;
      port.postMessage({ id: req.id, verdict: { status: 'retry', reasons: [reason] } } satisfies WorkerReply);
    },
  );
});
