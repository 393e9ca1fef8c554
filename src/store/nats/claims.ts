// Unique keys across nodes (agent names, key fingerprints): a claim is a KV create, so of two nodes
// racing for one key exactly one wins. A key that exists may still be taken over with a
// compare-and-set on its revision when `judge` says it is free (an expired hold, a claim whose
// agent never appeared); a lost compare-and-set reads the key again.

import type { KvEntryOf, KvMirror } from './kv-mirror.js';

export type Verdict = 'mine' | 'free' | 'taken';

/** Undo a claim this call made (only while the key is still at the claimed revision). */
export type Rollback = () => Promise<unknown>;

/** How often a claim re-reads a key that changed under it before it calls the key taken. */
const ATTEMPTS = 4;

/**
 * Claim `key` with `value`. Resolves a rollback when this call wrote the key, null when the key
 * was already ours, 'taken' when someone else holds it.
 */
export async function claim<T>(
  kv: KvMirror<T>,
  key: string,
  value: T,
  judge: (current: KvEntryOf<T>) => Verdict,
): Promise<Rollback | null | 'taken'> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const created = await kv.create(key, value);
    if (created !== false) return () => kv.delete(key, created);
    const current = await kv.fetch(key);
    if (!current) continue; // deleted meanwhile: create again
    const verdict = judge(current);
    if (verdict === 'mine') return null;
    if (verdict === 'taken') return 'taken';
    const updated = await kv.update(key, value, current.revision);
    if (updated !== false) return () => kv.delete(key, updated);
  }
  return 'taken';
}

/** Run rollbacks, ignoring their failures (a leftover claim is judged stale later). */
export async function rollBack(rollbacks: readonly Rollback[]): Promise<void> {
  await Promise.all(rollbacks.map((r) => r().catch(() => {})));
}
