// The TTL sweeper (spec §14): expired queue entries, forgotten message ids, idempotency records,
// receipt outbox frames, name holds and old revocations are removed in slices, yielding to the
// event loop between slices so that no sweep blocks requests.

import type { Logger } from 'pino';
import type { Store } from './types.js';

const SWEEP_EVERY_MS = 60_000;
const SLICE = 500;
/** Bound on slices per sweep; the rest waits for the next sweep. */
const MAX_SLICES = 200;

export function sweepOnce(store: Store, nowMs: number = Date.now()): Promise<number> {
  return new Promise((resolve) => {
    let removed = 0;
    let slices = 0;
    const step = () => {
      const c = store.sweep(nowMs, SLICE);
      const n = c.expiredMessages + c.forgottenIndexEntries + c.idempotencyRecords + c.outboxFrames;
      removed += n;
      if (c.more && ++slices < MAX_SLICES) setImmediate(step);
      else resolve(removed);
    };
    step();
  });
}

/** `more`: a further sweep on the same schedule (e.g. the outbound engine's expired items). */
export function startTtlSweeper(store: Store, logger: Logger, more?: () => Promise<number>): { stop(): void } {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepOnce(store)
      .then(async (removed) => removed + ((await more?.()) ?? 0))
      .then((removed) => {
        if (removed > 0) logger.debug({ removed }, 'ttl sweep');
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'ttl sweep failed'))
      .finally(() => (running = false));
  }, SWEEP_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
