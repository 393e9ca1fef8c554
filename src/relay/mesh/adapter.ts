// The outbound adapter of mesh targets (`mesh:<host id>`, spec §19.2): one attempt forwards one
// message to the peer's POST /v1/route as the flat body plus `from`, `id`, `timestamp`, the
// sender's `signature` and `_forwarded`, signed for that peer (client.ts). The peer keeps the
// envelope, so the recipient verifies the sender's own signature.
//
// Outcomes: 2xx (a duplicate too) → delivered; 429 → retry after its Retry-After; 5xx, network
// error or timeout → retry with the mesh policy's backoff; anything else (a 4xx: unknown recipient,
// bad authentication; a redirect, which is not followed) → parked.

import { isoTime } from '../../../proto/index.js';
import type { Adapter, OutboundItem, Outcome, TargetPolicy } from '../../outbound/index.js';
import type { OutboundMessage } from '../remote.js';
import type { MeshClient } from './client.js';

/**
 * A LAN peer: retried quickly first (1 s, 3 s, 9 s, 27 s, then every minute) until the message
 * expires; 5 failures in a row pause the peer for 30 s.
 */
export const MESH_POLICY: TargetPolicy = {
  concurrency: 4,
  retry: { baseMs: 1000, factor: 3, maxMs: 60_000, maxAttempts: Number.POSITIVE_INFINITY, jitter: 0.2 },
  breaker: { failures: 5, coolDownMs: 30_000 },
  attemptTimeoutMs: 10_000,
};

export const MESH_KIND = 'mesh';

export class MeshAdapter implements Adapter {
  constructor(private readonly client: MeshClient) {}

  async deliver(item: OutboundItem, signal: AbortSignal): Promise<Outcome> {
    const hostId = item.target.slice(MESH_KIND.length + 1);
    const host = this.client.host(hostId);
    if (!host) return { park: true, reason: `mesh host '${hostId}' is no longer configured` };
    const msg = JSON.parse(item.body) as OutboundMessage;
    const e = msg.envelope;
    const headers: Record<string, string> = {
      'X-Forwarded-From': e.from,
      'X-AMP-Envelope-Id': e.id,
    };
    const senderKey = msg.sender_public_key ? pemToHex(msg.sender_public_key) : undefined;
    if (senderKey) headers['X-AMP-Sender-Key'] = senderKey;
    const r = await this.client.post(host, '/route', this.flatBody(msg), signal, headers);
    if (r.status >= 200 && r.status < 300) return 'delivered';
    const reason = `HTTP ${r.status} from ${hostId}: ${r.text.slice(0, 200)}`;
    if (r.status === 429) return { retry: true, reason, retryAfterMs: retryAfterMs(r.headers.get('retry-after')) };
    if (r.status >= 500) return { retry: true, reason };
    return { park: true, reason, refusal: { status: r.status, body: parseJson(r.text) } };
  }

  /** The flat route body the peer reads (§19.2). */
  private flatBody(msg: OutboundMessage): Record<string, unknown> {
    const e = msg.envelope;
    const body: Record<string, unknown> = {
      from: e.from,
      to: e.to,
      subject: e.subject,
      priority: e.priority,
      payload: msg.payload,
      id: e.id,
      timestamp: e.timestamp,
      thread_id: e.thread_id,
    };
    if (e.signature) body.signature = e.signature;
    if (e.in_reply_to !== undefined) body.in_reply_to = e.in_reply_to;
    if (e.expires_at !== undefined) body.expires_at = e.expires_at;
    body._forwarded = {
      original_from: e.from,
      original_to: e.to,
      forwarded_by: this.client.config.selfId,
      forwarded_at: isoTime(Date.now()),
    };
    return body;
  }
}

/** The raw 32-byte key of an Ed25519 SPKI PEM, as 64 hex (a PEM's newlines cannot go in a header). */
function pemToHex(pem: string): string | undefined {
  const b64 = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  return der.length === 44 ? der.subarray(12).toString('hex') : undefined;
}

function retryAfterMs(v: string | null): number | undefined {
  const s = v === null ? Number.NaN : Number(v);
  return Number.isFinite(s) && s >= 0 ? Math.min(s, 3600) * 1000 : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
