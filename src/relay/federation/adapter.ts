// The outbound engine's adapter for other providers (targets `federation:<domain>`, spec §19.1):
// each attempt discovers the provider (cached), then POSTs the item's {envelope, payload,
// sender_public_key} to `<endpoint>/federation/deliver`, signed with a fresh timestamp.
// 200 (a duplicate too) → delivered; 429 → retry after its Retry-After; another 4xx → parked (the
// refusal is logged); 5xx, network errors and failed discovery → retry.

import type { Logger } from 'pino';
import type { Adapter, Outcome, OutboundItem, TargetPolicy } from '../../outbound/index.js';
import { DEFAULT_POLICY, OutboundFailure, UrlRefusedError, withPolicy } from '../../outbound/index.js';
import { DiscoveryError, type Providers } from './providers.js';
import { type RequestSigner, sendSigned } from './signed-request.js';

/**
 * Retries: 1 s, 5 s, 25 s, 2 min, then every 5 min (±20 % jitter) until the message expires; five
 * failures in a row pause the provider for 30 s before one probe.
 */
export const FEDERATION_POLICY: TargetPolicy = withPolicy(DEFAULT_POLICY, {
  retry: { baseMs: 1000, factor: 5, maxMs: 5 * 60_000, jitter: 0.2 },
  breaker: { failures: 5, coolDownMs: 30_000 },
});

export function federationAdapter(providers: Providers, signer: RequestSigner, logger: Logger): Adapter {
  return {
    async deliver(item: OutboundItem, signal: AbortSignal): Promise<Outcome> {
      const domain = item.target.slice(item.target.indexOf(':') + 1);
      let endpoint: string;
      try {
        endpoint = (await providers.resolve(domain)).endpoint;
      } catch (e) {
        if (e instanceof DiscoveryError) return { retry: true, reason: `discovery: ${e.message}` };
        throw e;
      }
      const url = `${endpoint}/federation/deliver`;
      let res: Awaited<ReturnType<typeof sendSigned>>;
      try {
        res = await sendSigned(signer, url, { method: 'POST', signed: item.body, body: item.body }, signal);
      } catch (e) {
        if (e instanceof UrlRefusedError && e.reason !== 'unresolvable') return { park: true, reason: e.message };
        if (e instanceof UrlRefusedError || e instanceof OutboundFailure) return { retry: true, reason: e.message };
        throw e;
      }
      return outcome(res.status, res.headers['retry-after'], res.body, { id: item.id, domain, logger });
    },
  };
}

function outcome(
  status: number,
  retryAfter: string | string[] | undefined,
  body: Buffer,
  about: { id: string; domain: string; logger: Logger },
): Outcome {
  if (status === 200) return 'delivered';
  const { code, field } = errorOf(body);
  // Ed25519 is deterministic: the same body in the same second is the same signature, which the
  // receiver takes once. Another second makes another signature.
  if (status === 409 && field === 'X-AMP-Signature')
    return { retry: true, reason: '409 signature reused', retryAfterMs: 1000 };
  if (status === 429) {
    const s = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    return { retry: true, reason: `429 ${code}`, retryAfterMs: Number.isFinite(s) && s > 0 ? s * 1000 : undefined };
  }
  if (status >= 400 && status < 500) {
    about.logger.warn(
      { event: 'federation_refused', provider: about.domain, id: about.id, status, code },
      `provider ${about.domain} refused message ${about.id}: ${status} ${code}`,
    );
    return { park: true, reason: `${status} ${code}` };
  }
  return { retry: true, reason: `${status} ${code}` };
}

function errorOf(body: Buffer): { code: string; field: string } {
  try {
    const v = JSON.parse(body.toString('utf8')) as { error?: unknown; field?: unknown };
    return { code: typeof v.error === 'string' ? v.error : '', field: typeof v.field === 'string' ? v.field : '' };
  } catch {
    return { code: '', field: '' };
  }
}
