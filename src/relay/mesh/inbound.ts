// Requests from mesh peers (spec §19.2): POST /v1/route (a forwarded message) and POST
// /v1/mesh/resolve (is this address here?), without an API key. The peer is authenticated first:
// a configured host id in X-AMP-Mesh-Host, X-AMP-Timestamp within ±300 s, and the proof its entry
// calls for over "<timestamp>.<raw body>": X-AMP-Mesh-Auth (HMAC with the shared secret) or
// X-AMP-Mesh-Signature (Ed25519 by its host key). Each proof is accepted once. Every refusal of
// the peer is 401 `unauthorized` naming the problem; the host checks run before the body is read.
//
// Only then are `from`, `id` and `timestamp` honoured. A signed message is checked with
// X-AMP-Sender-Key (the sender's key, 64 hex or PEM) against the canonical string: it must verify
// (else 403 `signature_invalid`), and the recipient sees `signature_verified: true`. A peer may not
// speak for an agent registered here (403 `forbidden`). The message is appended with its envelope
// as built by the sender's host (ForeignInbox, ids deduplicated per peer).

import {
  AMP_VERSION,
  AmpError,
  canonicalString,
  decodeRouteBody,
  type Envelope,
  invalidField,
  isAcceptedMessageId,
  isFullAddress,
  isoTime,
  MAX_FUTURE_SKEW_S,
  parseIsoDateTime,
  parseJsonBody,
  payloadHash,
} from '../../../proto/index.js';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import { ReplayCache } from '../../crypto/replay.js';
import {
  REQUEST_TIMESTAMP_WINDOW_S,
  timestampProblem,
  verifyHmacRequestHeader,
  verifyRequestSignature,
} from '../../crypto/request-signing.js';
import type { Ed25519Verifier } from '../../crypto/verifier.js';
import type { Agents } from '../agents.js';
import type { RelayContext } from '../context.js';
import type { ForeignInbox } from '../foreign.js';
import type { MeshHost } from './config.js';
import type { MeshDirectory } from './directory.js';

/** The request headers a peer's request is judged by (the transport copies them). */
export interface MeshHeaders {
  meshHost: string;
  timestamp: string;
  meshAuth: string;
  meshSignature: string;
  senderKey: string;
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo. */
const SPKI_PREFIX_HEX = '302a300506032b6570032100';

function refused(message: string): AmpError {
  return new AmpError('unauthorized', message, { headers: { 'WWW-Authenticate': 'AMP-Mesh' } });
}

export class MeshInbound {
  /** Proofs (MACs, signatures) already accepted; kept past the timestamp window, so none is reused. */
  private readonly used = new ReplayCache(2 * REQUEST_TIMESTAMP_WINDOW_S * 1000);

  constructor(
    private readonly ctx: RelayContext,
    private readonly hosts: readonly MeshHost[],
    private readonly parts: {
      verifier: Ed25519Verifier;
      agents: Agents;
      foreign: ForeignInbox;
      directory: MeshDirectory;
      selfId: string;
    },
  ) {}

  /** Before the body: the peer named, its timestamp fresh, a proof of the kind its entry calls for. */
  checkHeaders(h: MeshHeaders, nowMs = Date.now()): MeshHost {
    if (!h.meshHost)
      throw refused(
        'X-Forwarded-From does not authenticate anyone: an agent sends its API key; a mesh peer sends ' +
          'X-AMP-Mesh-Host, X-AMP-Timestamp and X-AMP-Mesh-Auth or X-AMP-Mesh-Signature',
      );
    const host = this.hosts.find((x) => x.id === h.meshHost);
    if (!host) throw refused(`X-AMP-Mesh-Host '${h.meshHost.slice(0, 64)}' is not a mesh host configured here`);
    const ts = timestampProblem(h.timestamp || undefined, nowMs);
    if (ts === 'malformed') throw refused('X-AMP-Timestamp must be the request time in Unix seconds');
    if (ts === 'skewed') {
      const off = Number(h.timestamp) - Math.floor(nowMs / 1000);
      throw refused(
        `X-AMP-Timestamp is ${off} s from this host's clock; the window is ±${REQUEST_TIMESTAMP_WINDOW_S} s`,
      );
    }
    const want = host.auth.kind === 'secret' ? 'X-AMP-Mesh-Auth' : 'X-AMP-Mesh-Signature';
    if (!(host.auth.kind === 'secret' ? h.meshAuth : h.meshSignature))
      throw refused(`Mesh host '${host.id}' authenticates with ${want}`);
    return host;
  }

  /** The proof over "<timestamp>.<raw body>", then claimed: a second use is refused. */
  async authenticate(host: MeshHost, h: MeshHeaders, raw: string): Promise<void> {
    let ok: boolean;
    const proof = host.auth.kind === 'secret' ? h.meshAuth : h.meshSignature;
    if (host.auth.kind === 'secret') ok = verifyHmacRequestHeader(host.auth.secret, h.timestamp, raw, h.meshAuth);
    else {
      const { verifier } = this.parts;
      ok = await verifyRequestSignature(verifier, host.auth.publicKeyPem, h.timestamp, raw, h.meshSignature);
    }
    if (!ok) {
      const what = host.auth.kind === 'secret' ? 'X-AMP-Mesh-Auth is not the HMAC' : 'X-AMP-Mesh-Signature is not';
      throw refused(`${what} of this request by mesh host '${host.id}' (over "<timestamp>.<raw body>")`);
    }
    if (!this.used.claim([host.id, proof])) {
      throw refused('This mesh request was already accepted: each MAC or signature is accepted once');
    }
  }

  /** POST /v1/route from a peer: the forwarded message, appended for its local recipient. */
  async route(h: MeshHeaders, raw: () => Promise<string>): Promise<Record<string, unknown>> {
    const host = this.checkHeaders(h);
    const text = await raw();
    await this.authenticate(host, h, text);
    const nowMs = Date.now();
    const body = parseObject(text);
    const req = decodeRouteBody(body, { nowMs, attachments: false });
    const envelope = this.envelope(body, req, nowMs);
    const { verified, keyHex } = await this.senderSignature(envelope, req.payload, req.signatureBytes, h.senderKey);
    const out = await this.parts.foreign.accept({
      envelope,
      payload: req.payload,
      senderKeyHex: keyHex,
      signatureVerified: verified,
      source: `mesh:${host.id}`,
    });
    const at = isoTime(Date.now());
    return {
      id: out.id,
      status: out.status,
      method: out.method,
      ...(out.status === 'delivered' ? { delivered_at: at } : { queued_at: at }),
      ...(out.duplicate ? { duplicate: true } : {}),
    };
  }

  /** POST /v1/mesh/resolve from a peer: `{"address"}` → 200 when an agent here has it, else 404. */
  async resolve(h: MeshHeaders, raw: () => Promise<string>): Promise<Record<string, unknown>> {
    const host = this.checkHeaders(h);
    const text = await raw();
    await this.authenticate(host, h, text);
    const address = parseObject(text).address;
    if (typeof address !== 'string' || address.length > 254) throw invalidField('address', 'address must be a string');
    const { agents, directory, selfId } = this.parts;
    const agent = agents.findByAddress(directory.localize(address) ?? address);
    if (!agent) throw new AmpError('not_found', 'No agent here has this address', { details: { address } });
    return { address: address.toLowerCase(), found: true, host: selfId };
  }

  /** The envelope as the sender's host built it, once its fields are checked. */
  private envelope(body: Record<string, unknown>, req: ReturnType<typeof decodeRouteBody>, nowMs: number): Envelope {
    const { id, timestamp } = body;
    const from = typeof req.from === 'string' ? req.from.toLowerCase() : '';
    if (!isFullAddress(from)) throw invalidField('from', 'from must be the full address of the sender');
    const { agents, directory } = this.parts;
    if (agents.findByAddress(directory.localize(from) ?? from))
      throw new AmpError('forbidden', 'A mesh peer cannot send as an agent registered on this host', {
        field: 'from',
      });
    if (typeof id !== 'string' || !isAcceptedMessageId(id)) throw invalidField('id', 'id must be a message id');
    const at = typeof timestamp === 'string' ? parseIsoDateTime(timestamp) : null;
    if (at === null) throw invalidField('timestamp', 'timestamp must be an ISO 8601 date-time with a zone');
    if (at > nowMs + MAX_FUTURE_SKEW_S * 1000)
      throw new AmpError('timestamp_future', `timestamp is more than ${MAX_FUTURE_SKEW_S} s ahead of this host`, {
        field: 'timestamp',
      });
    const envelope: Envelope = {
      version: AMP_VERSION,
      id,
      from,
      to: req.to,
      subject: req.subject,
      priority: req.priority,
      timestamp: timestamp as string,
      signature: req.signature ?? '',
      thread_id: req.thread_id ?? id,
    };
    if (req.in_reply_to !== undefined) envelope.in_reply_to = req.in_reply_to;
    if (req.expires_at !== undefined) envelope.expires_at = req.expires_at;
    return envelope;
  }

  /** §11 end to end: a present signature must verify with X-AMP-Sender-Key. */
  private async senderSignature(
    e: Envelope,
    payload: Record<string, unknown>,
    signature: Buffer | undefined,
    keyHeader: string,
  ): Promise<{ verified: boolean; keyHex: string }> {
    if (!signature) {
      if (this.ctx.config.signatures === 'required')
        throw new AmpError('signature_missing', 'This host requires signed messages', { field: 'signature' });
      return { verified: false, keyHex: '' };
    }
    if (!keyHeader) return { verified: false, keyHex: '' };
    const key = senderKey(keyHeader);
    if (!key) throw invalidField('X-AMP-Sender-Key', 'X-AMP-Sender-Key must be an Ed25519 public key (64 hex or PEM)');
    const fields = { from: e.from, to: e.to, subject: e.subject, priority: e.priority, in_reply_to: e.in_reply_to };
    const data = Buffer.from(canonicalString({ ...fields, payload_hash: payloadHash(payload) }), 'utf8');
    if (!(await this.parts.verifier.verify(key.pem, data, signature)))
      throw new AmpError('signature_invalid', "The message signature does not verify with the sender's key", {
        field: 'signature',
      });
    return { verified: true, keyHex: key.raw.toString('hex') };
  }
}

/** X-AMP-Sender-Key: 64 hex digits of the raw key, or a PEM (its newlines may be written `\n`). */
function senderKey(header: string): { pem: string; raw: Buffer } | undefined {
  const v = header.trim();
  let pem: string;
  if (/^[0-9a-fA-F]{64}$/.test(v)) {
    const der = Buffer.from(SPKI_PREFIX_HEX + v, 'hex').toString('base64');
    pem = `-----BEGIN PUBLIC KEY-----\n${der}\n-----END PUBLIC KEY-----\n`;
  } else pem = v.replace(/\\n/g, '\n');
  const key = parsePublicKeyPem(pem);
  return typeof key === 'string' ? undefined : { pem: key.pem, raw: key.raw };
}

function parseObject(text: string): Record<string, unknown> {
  const parsed = parseJsonBody(text);
  if (!parsed.ok) throw new AmpError('invalid_request', `Request body is not valid JSON: ${parsed.error}`);
  const v = parsed.value;
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  return v as Record<string, unknown>;
}
