// A process that queues one webhook item durably and tries it once, for the kill -9 test
// (test/integration/outbound-http.test.ts): run with `node --import tsx`, args: data dir, target,
// message id, receiver URL. Prints `queued <id>` once the enqueue resolved and `retry <id> <reason>`
// once the failed attempt is recorded, then waits to be killed.

import { OutboundEngine, WEBHOOK_POLICY } from '../../src/outbound/index.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import { httpAdapter } from './outbound.js';

const [dataDir, target, id, url] = process.argv.slice(2) as [string, string, string, string];
const store = new LmdbStore({ dataDir });
const engine = new OutboundEngine({
  store,
  adapters: { webhook: httpAdapter(() => url) },
  policies: { webhook: WEBHOOK_POLICY },
});
engine.on('retry', (item, reason) => process.stdout.write(`retry ${item.id} ${reason}\n`));
engine.start();
await engine.enqueue(target, { id, body: JSON.stringify({ envelope: { id }, payload: { message: 'hi' } }) });
process.stdout.write(`queued ${id}\n`);
// Kept alive until the test kills it (bounded: a forgotten child ends by itself after a minute).
setTimeout(() => process.exit(3), 60_000);
