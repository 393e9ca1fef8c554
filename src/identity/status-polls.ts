// Status polling of a registration (agent-identity §4.2, §6.2): by id with the registration's
// fingerprint (and an optional signed proof), or by user code, at the interval the server asks for.

import { safeEqual, sha256Hex } from '../crypto/hash.js';
import type { Ed25519Verifier } from '../crypto/verifier.js';
import { AidError } from './errors.js';
import { normUserCode, POLL, type Registration, statusProofParts } from './registration-model.js';
import type { Registrations } from './registrations.js';

export class StatusPolls {
  constructor(
    private readonly registrations: Registrations,
    private readonly verifier: Ed25519Verifier,
    private readonly issuerOf: (tenant: string) => string,
  ) {}

  /** Per registration: when it was last polled, and the interval now asked of it (§4.2). */
  private readonly polls = new Map<string, { at: number; interval: number }>();

  /**
   * Status poll (§4.2): by id with the registration's fingerprint (and an optional §6.2 proof), or
   * by user code. Polling faster than the interval answers 429 slow_down and lengthens it by 5 s.
   */
  async pollStatus(
    tenant: string,
    by: { id: string; fingerprint: unknown; proof: unknown; aliases?: readonly string[] } | { code: string },
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    let r: Registration | undefined;
    if ('code' in by) {
      const h = sha256Hex(normUserCode(by.code));
      const full = sha256Hex(by.code);
      r = this.registrations.allInTenant(tenant).find((x) => x.user_code_hash === h || x.code_hash === full);
      if (!r) throw new AidError('not_found', 'Unknown or expired code');
    } else {
      r = this.registrations.get(tenant, by.id);
      const fp = typeof by.fingerprint === 'string' ? by.fingerprint : '';
      const matches = [r.fingerprint, r.fingerprint_raw].some((x) => safeEqual(x, fp));
      if (!matches) throw new AidError('invalid_proof', 'fingerprint does not match the registration', POLL);
      if (by.proof !== undefined && by.proof !== null && by.proof !== '') {
        const issuers = [this.issuerOf(tenant), ...(by.aliases ?? [])];
        const parts = await statusProofParts(this.verifier, r, issuers, String(by.proof));
        if (!parts) throw new AidError('invalid_proof', 'status proof does not verify', POLL);
        if (!this.registrations.replay.claim([tenant, parts.sig, parts.ts, '|status']))
          throw new AidError('invalid_proof', 'status proof already used; sign a new one', POLL);
      }
    }
    const now = Date.now();
    const poll = this.polls.get(r.id);
    if (poll && now - poll.at < poll.interval * 1000) {
      poll.interval += 5;
      poll.at = now;
      return {
        status: 429,
        body: {
          error: 'slow_down',
          error_description: `Polling too frequently. Increase interval to ${poll.interval} seconds.`,
          interval: poll.interval,
        },
      };
    }
    this.polls.set(r.id, { at: now, interval: poll?.interval ?? 5 });
    if (r.status === 'pending') {
      if (r.code_expires_at !== null && r.code_expires_at <= now)
        return {
          status: 410,
          body: { error: 'expired_token', error_description: 'The registration request expired; request again' },
        };
      return {
        status: 200,
        body: {
          error: 'authorization_pending',
          status: 'pending',
          interval: poll?.interval ?? 5,
          data: this.registrations.resource(r),
        },
      };
    }
    const body: Record<string, unknown> = { data: this.registrations.resource(r) };
    if (r.status === 'rejected') body.error = 'access_denied';
    return { status: 200, body };
  }
}
