// The key of a sender at its home provider (spec §19.1: `sender_public_key` must equal it and not be
// revoked). Asked with `GET <endpoint>/federation/keys/<address>?fingerprint=<SHA256:…>`, signed by
// our provider key over "<timestamp>.<address>\n<fingerprint>" (see inbound.ts for the answering
// side). Answers are cached for an hour per address; a key that differs from a cached one is asked
// again at most once a minute (the sender may have rotated).

import { AmpError } from '../../../proto/index.js';
import { OutboundFailure, UrlRefusedError } from '../../outbound/index.js';
import type { ProviderInfo } from './providers.js';
import { type RequestSigner, sendSigned } from './signed-request.js';

export const HOME_KEY_CACHE_MS = 3_600_000;
const RECHECK_AFTER_MS = 60_000;
const MAX_CACHED = 10_000;

export interface HomeKey {
  address: string;
  public_key: string;
  fingerprint: string;
  /** Whether the fingerprint asked about is on the home provider's revocation list. */
  key_revoked: boolean;
}

export class HomeKeys {
  private readonly cache = new Map<string, { key: HomeKey; at: number }>();

  constructor(private readonly signer: RequestSigner) {}

  /**
   * The sender's current key at its home provider, and whether `fingerprint` (the key it sent) is
   * revoked there. 503 when the home provider cannot answer (the delivering provider retries).
   */
  async lookup(home: ProviderInfo, address: string, fingerprints: readonly string[]): Promise<HomeKey> {
    const now = Date.now();
    const hit = this.cache.get(address);
    if (hit && now - hit.at < HOME_KEY_CACHE_MS) {
      if (fingerprints.includes(hit.key.fingerprint) || now - hit.at < RECHECK_AFTER_MS) return hit.key;
    }
    const key = await this.ask(home, address, fingerprints[0]);
    if (!key.key_revoked) {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.delete(address);
      this.cache.set(address, { key, at: now });
    }
    return key;
  }

  private async ask(home: ProviderInfo, address: string, fingerprint: string): Promise<HomeKey> {
    const url = `${home.endpoint}/federation/keys/${encodeURIComponent(address)}?fingerprint=${encodeURIComponent(fingerprint)}`;
    let res: Awaited<ReturnType<typeof sendSigned>>;
    try {
      res = await sendSigned(this.signer, url, { method: 'GET', signed: `${address}\n${fingerprint}` });
    } catch (e) {
      if (e instanceof UrlRefusedError || e instanceof OutboundFailure) throw unavailable(home, e.message);
      throw e;
    }
    const body = parse(res.body);
    if (res.status === 404) {
      throw new AmpError('key_mismatch', `The sender's home provider ${home.domain} does not know ${address}`, {
        field: 'envelope.from',
      });
    }
    if (res.status !== 200 || !body || typeof body.public_key !== 'string' || typeof body.fingerprint !== 'string') {
      throw unavailable(home, `answered ${res.status}${body?.error ? ` ${String(body.error)}` : ''}`);
    }
    const revoked = body.key_revoked === true || res.headers['x-amp-key-revoked'] === fingerprint;
    return { address, public_key: body.public_key, fingerprint: body.fingerprint, key_revoked: revoked };
  }
}

function parse(buf: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function unavailable(home: ProviderInfo, why: string): AmpError {
  return new AmpError(
    'service_unavailable',
    `The sender's home provider ${home.domain} could not confirm the key: ${why}`,
    {
      retryAfter: 30,
    },
  );
}
