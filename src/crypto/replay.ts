// A replay cache: each signed proof (AMP key recovery, signed WebSocket auth, AID token and status
// proofs) is accepted once while it is remembered. Remember it at least as long as its timestamp
// stays inside its window, so a forgotten proof is a refused one anyway.

import { createHash } from 'node:crypto';

export class ReplayCache {
  /**
   * SHA-256 of the parts -> expiry (ms). Every entry lives `ttlMs` from its claim, so insertion
   * order is expiry order (a release deletes, a new claim appends) and the sweep stops early.
   */
  private readonly used = new Map<string, number>();

  constructor(readonly ttlMs: number) {}

  /**
   * Claim `parts` (joined unambiguously); false when they were claimed before and are still
   * remembered. Claim before any await, so two concurrent uses cannot both pass.
   */
  claim(parts: readonly (string | Buffer)[], now: number = Date.now()): boolean {
    this.sweep(now);
    const key = digest(parts);
    const exp = this.used.get(key);
    if (exp !== undefined && exp > now) return false;
    this.used.delete(key);
    this.used.set(key, now + this.ttlMs);
    return true;
  }

  /** Forget a claim whose proof then failed: the same parts may be tried again. */
  release(parts: readonly (string | Buffer)[]): void {
    this.used.delete(digest(parts));
  }

  size(): number {
    return this.used.size;
  }

  private sweep(now: number): void {
    for (const [k, exp] of this.used) {
      if (exp > now) break;
      this.used.delete(k);
    }
  }
}

/** Each part prefixed with its length, so ['ab', 'c'] and ['a', 'bc'] never share a key. */
function digest(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  const len = Buffer.alloc(4);
  for (const p of parts) {
    const bytes = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    len.writeUInt32BE(bytes.length);
    h.update(len).update(bytes);
  }
  return h.digest('base64');
}
