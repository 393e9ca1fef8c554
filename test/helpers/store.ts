// The LMDB store driven directly (unit-level store tests): stores in temp dirs closed and removed
// after each test, and queued messages as route() builds them.

import { rmSync } from 'node:fs';
import { afterEach } from 'vitest';
import { isoTime, newMessageId, type QueuedMessage } from '../../proto/index.js';
import { LmdbStore, type LmdbStoreOptions } from '../../src/store/lmdb.js';
import type { AppendInput } from '../../src/store/types.js';
import { tempDir } from './server.js';

export type Defer = (cleanup: () => Promise<void> | void) => void;

/** Call at a test file's top level: `defer(fn)` runs fn after the current test, last deferred first. */
export function afterEachCleanup(): Defer {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}

/** Call at a test file's top level: an opener whose stores are closed and removed after each test. */
export function testStores(
  prefix: string,
  defer: Defer = afterEachCleanup(),
): (opts?: Omit<LmdbStoreOptions, 'dataDir'>) => LmdbStore {
  return (opts = {}) => {
    const dir = tempDir(prefix);
    const store = new LmdbStore({ dataDir: dir, ...opts });
    defer(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return store;
  };
}

export interface QueuedInputOptions {
  senderId: string;
  expiresAtMs: number;
  subject?: string;
  nowMs?: number;
  receipt?: boolean;
  /** Domain of the envelope's addresses. */
  domain?: string;
}

/** A queued message as route() builds it, ready for `store.append`. */
export function queuedInput(o: QueuedInputOptions): AppendInput {
  const { senderId, expiresAtMs, subject = 'hello', nowMs = Date.now(), receipt = false } = o;
  const domain = o.domain ?? 't.aimaestro.local';
  const id = newMessageId(nowMs);
  const msg: QueuedMessage = {
    id,
    envelope: {
      version: 'amp/0.1',
      id,
      from: `a@${domain}`,
      to: `b@${domain}`,
      subject,
      priority: 'normal',
      timestamp: isoTime(nowMs),
      signature: '',
      thread_id: id,
    },
    payload: { type: 'notification', message: subject },
    queued_at: isoTime(nowMs),
    expires_at: isoTime(expiresAtMs),
    sender_public_key: '',
    security: { trust_level: 'untrusted', signature_verified: false, sender_authenticated: true, injection_flags: [] },
  };
  return { msg, json: JSON.stringify(msg), expiresAtMs, senderId, receipt };
}
