// The proof replay cache (agent-identity §6): a proof is accepted once within its lifetime. Token
// and status proofs share it; their signing inputs differ, so their keys never collide.

import { createHash } from 'node:crypto';

export class ReplayCache {
  /** key -> expiry (ms); every entry lives `ttlMs`, so insertion order is expiry order. */
  private readonly used = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  /** Record the use of `parts`; false when it was already used and is still remembered. */
  firstUse(parts: readonly (string | Buffer)[], now: number = Date.now()): boolean {
    for (const [k, exp] of this.used) {
      if (exp > now) break;
      this.used.delete(k);
    }
    const h = createHash('sha256');
    for (const p of parts) h.update(typeof p === 'string' ? Buffer.from(p, 'utf8') : p).update('\0');
    const key = h.digest('base64');
    if (this.used.has(key)) return false;
    this.used.set(key, now + this.ttlMs);
    return true;
  }

  size(): number {
    return this.used.size;
  }
}
