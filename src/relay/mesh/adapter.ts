// The outbound adapter of mesh targets (`mesh:<host id>`, spec §19.2): one attempt forwards one
// message to the peer's POST /v1/route as the flat body plus `from`, `id`, `timestamp`, the
// sender's `signature` and `_forwarded`, signed for that peer (client.ts). The peer keeps the
// envelope, so the recipient verifies the sender's own signature.
//
// Outcomes: 2xx (a duplicate too) → delivered. A refusal that cannot change by sending again →
// parked: 400, 413, 422 (invalid), 403 (policy: a sender the peer will not take), 404 (no such
// agent there), 409 (the id is there with other content), and a redirect (not followed). Anything
// else is retried with the mesh policy's backoff (a 429 after its Retry-After at least): a network
// error or timeout, 5xx, 408, and 401 (the peers' authentication: clock skew, a secret being
// rotated on both sides, a MAC timestamped before the peer restarted), since the peer or its
// configuration may come back right.
//
// Each sender's items for one recipient are sent in order (MESH_POLICY.ordered, grouped by sender
// and recipient): a later message never overtakes an earlier one of the pair waiting for its retry,
// so a conversation arrives in the order it was sent; other pairs' messages go meanwhile.

import { isoTime } from '../../../proto/index.js';
import { type Adapter, deferUntil, type OutboundItem, type Outcome, type TargetPolicy } from '../../outbound/index.js';
import type { OutboundMessage } from '../remote.js';
import type { MeshClient } from './client.js';

/**
 * A LAN peer: retried quickly first (1 s, 3 s, 9 s, 27 s, then every minute) until the message
 * expires; 5 failures in a row pause the peer for 30 s. Up to 4 attempts at once, one per sender
 * and recipient (the oldest pending item of each pair first: their order kept across the hop).
 */
export const MESH_POLICY: TargetPolicy = {
  concurrency: 4,
  ordered: true,
  retry: { baseMs: 1000, factor: 3, maxMs: 60_000, maxAttempts: Number.POSITIVE_INFINITY, jitter: 0.2 },
  breaker: { failures: 5, coolDownMs: 30_000 },
  attemptTimeoutMs: 10_000,
};

/** Peer answers that park an item: a refusal sending it again cannot change. */
const PERMANENT = new Set([400, 403, 404, 409, 410, 413, 422]);

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
    const r = await this.client.post(host, '/route', this.flatBody(msg, senderKey), signal, headers);
    if (r.status >= 200 && r.status < 300) return 'delivered';
    const reason = `HTTP ${r.status} from ${hostId}: ${r.text.slice(0, 200)}`;
    const refusal = { status: r.status, body: parseJson(r.text) };
    // A suspended recipient may be unsuspended: held back and tried again, like federation does.
    if (r.status === 403 && errorCode(refusal.body) === 'recipient_suspended')
      return { defer: true, reason, until: deferUntil(item.createdAt), refusal };
    if (PERMANENT.has(r.status) || (r.status >= 300 && r.status < 400)) return { park: true, reason, refusal };
    const after = r.status === 429 ? retryAfterMs(r.headers.get('retry-after')) : undefined;
    return after === undefined ? { retry: true, reason } : { retry: true, reason, retryAfterMs: after };
  }

  /**
   * The flat route body the peer reads (§19.2). The sender's key goes in it too
   * (`sender_public_key`, 64 hex), so the MAC covers the key the signature is checked with.
   */
  private flatBody(msg: OutboundMessage, senderKey: string | undefined): Record<string, unknown> {
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
    if (e.signature && senderKey) body.sender_public_key = senderKey;
    if (e.in_reply_to !== undefined) body.in_reply_to = e.in_reply_to;
    if (e.expires_at !== undefined) body.expires_at = e.expires_at;
    body._forwarded = {
      original_from: e.from,
      original_to: e.to,
      forwarded_by: this.client.config.selfId,
      forwarded_at: isoTime(Date.now()),
      ...(msg.same_tenant ? { cross_tenant: 'deny' } : {}),
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

function errorCode(body: unknown): string | undefined {
  const e = (body as { error?: unknown } | undefined)?.error;
  return typeof e === 'string' ? e : undefined;
}
