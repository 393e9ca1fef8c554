// One signed request from this provider to another (spec §19.1): X-AMP-Provider names us,
// X-AMP-Timestamp is taken fresh for each request, X-AMP-Signature is our provider key's
// Ed25519 signature over "<timestamp>.<signed bytes>" (the raw body of a POST; for the key
// lookup GET, the address and fingerprint asked about, see keys.ts).

import type { FetchCheckedResult } from '../../outbound/fetch-checked.js';
import { type AllowList, fetchChecked } from '../../outbound/index.js';
import { VERSION } from '../../version.js';

export type Signer = (timestamp: string, rawBody: string | Uint8Array) => string;

export interface RequestSigner {
  /** Our provider domain (AMP_PROVIDER_DOMAIN). */
  domain: string;
  sign: Signer;
  allowHttp: AllowList;
}

export const FEDERATION_HEADERS = {
  provider: 'X-AMP-Provider',
  timestamp: 'X-AMP-Timestamp',
  signature: 'X-AMP-Signature',
  keyRevoked: 'X-AMP-Key-Revoked',
} as const;

export function signedHeaders(s: RequestSigner, signedBytes: string, nowMs = Date.now()): Record<string, string> {
  const ts = String(Math.floor(nowMs / 1000));
  return {
    'User-Agent': `amp-relay/${VERSION}`,
    [FEDERATION_HEADERS.provider]: s.domain,
    [FEDERATION_HEADERS.timestamp]: ts,
    [FEDERATION_HEADERS.signature]: s.sign(ts, signedBytes),
  };
}

/** Throws UrlRefusedError or OutboundFailure, as fetchChecked. No redirects: an endpoint is where it says. */
export function sendSigned(
  s: RequestSigner,
  url: string,
  req: { method: 'GET' | 'POST'; signed: string; body?: string },
  signal?: AbortSignal,
): Promise<FetchCheckedResult> {
  const headers = signedHeaders(s, req.signed);
  if (req.body !== undefined) headers['Content-Type'] = 'application/json';
  const sent = fetchChecked(url, {
    allow: s.allowHttp,
    method: req.method,
    headers,
    body: req.body,
    maxRedirects: 0,
    maxBodyBytes: 64 * 1024,
  });
  if (!signal) return sent;
  return new Promise((resolve, reject) => {
    const abort = () => reject(new Error('aborted'));
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    sent.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
