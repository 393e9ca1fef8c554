// The core REST/WS tests run against both stores: `describe.each(STORES)` over the embedded LMDB
// store and cluster mode on NATS JetStream. In nats mode one nats-server (JetStream, replicas 1) is
// started once per test file, on first use, and every server the file starts gets its own prefix
// (its own streams and buckets) on it.

import { afterAll } from 'vitest';
import type { StartOptions } from '../../src/server.js';
import { type NatsCluster, startNats, uniquePrefix } from './nats.js';

export const STORES = ['lmdb', 'nats'] as const;
export type StoreMode = (typeof STORES)[number];

let shared: Promise<NatsCluster> | undefined;
let hooked = false;

/** The StartOptions that put a test server on `mode`'s store (nothing for lmdb). */
export async function storeOptions(mode: StoreMode, tag = 'matrix'): Promise<StartOptions> {
  if (mode === 'lmdb') return {};
  shared ??= startNats({ cluster: 1 });
  const nats = await shared;
  return { store: 'nats', natsUrl: nats.urls, natsPrefix: uniquePrefix(tag), natsReplicas: 1 } as StartOptions;
}

/** Call once at the top of a matrix file: stops the file's shared NATS after its last test. */
export function useStoreMatrix(): void {
  if (hooked) return;
  hooked = true;
  afterAll(async () => {
    const s = shared;
    shared = undefined;
    await (await s?.catch(() => undefined))?.close();
  });
}
