// route(): the path of one message (spec §11, §12). Transport parses, this decides, the store
// persists, then live sessions get the push. The answer is given only after the commit.

import {
  AmpError,
  AMP_VERSION,
  MAX_STORED_MESSAGE_BYTES,
  canonicalString,
  decodeRouteBody,
  isoTime,
  newMessageId,
  payloadHash,
  tooLarge,
  type Envelope,
  type QueuedMessage,
  type RouteRequest,
  type RouteResult,
  type Security,
} from '../../proto/index.js';
import { verifyEd25519 } from '../crypto/keys.js';
import type { AgentRecord } from '../store/types.js';
import type { Agents } from './agents.js';
import type { RelayContext } from './context.js';

const QUEUE_FULL_RETRY_AFTER_S = 60;

export interface RouteOptions {
  headerIdempotencyKey?: string;
}

export class MessageRouter {
  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
  ) {}

  async route(sender: AgentRecord, body: unknown, opts: RouteOptions = {}): Promise<RouteResult> {
    const { config, store } = this.ctx;
    const nowMs = Date.now();
    const req = decodeRouteBody(body, { nowMs, headerIdempotencyKey: opts.headerIdempotencyKey || undefined });

    if (sender.status !== 'active') throw new AmpError('agent_suspended', 'This agent is suspended and cannot send messages');
    if (req.from !== undefined) {
      const from = req.from.toLowerCase();
      if (from !== sender.address && from !== sender.short_address) {
        throw new AmpError('forbidden', `'from' must be the authenticated agent (${sender.address})`, { field: 'from' });
      }
    }

    const { agent: recipient, address: toExpanded } = this.agents.resolveRecipient(req.to, sender);
    if (recipient.status !== 'active') throw new AmpError('recipient_suspended', 'The recipient agent is suspended', { field: 'to' });
    if (config.crossTenant === 'deny' && recipient.tenant !== sender.tenant) {
      throw new AmpError('forbidden', 'Messages to other tenants are not allowed on this provider', { field: 'to' });
    }

    const signed = await this.verify(sender, req, toExpanded);

    if (store.pendingCount(recipient.id, nowMs) >= config.maxQueue) {
      throw new AmpError('queue_full', `Recipient's queue is full (${config.maxQueue} messages); retry later`, {
        details: { recipient: recipient.address, limit: config.maxQueue },
        retryAfter: QUEUE_FULL_RETRY_AFTER_S,
      });
    }

    const id = newMessageId(nowMs);
    const envelope: Envelope = {
      version: AMP_VERSION,
      id,
      from: signed?.from ?? sender.address,
      to: signed?.to ?? toExpanded,
      subject: req.subject,
      priority: req.priority,
      timestamp: isoTime(nowMs),
      signature: req.signature ?? '',
      thread_id: this.threadId(req, id, sender),
    };
    if (req.in_reply_to !== undefined) envelope.in_reply_to = req.in_reply_to;
    if (req.expires_at !== undefined) envelope.expires_at = req.expires_at;
    if (req.idempotency_key !== undefined) envelope.idempotency_key = req.idempotency_key;

    const storedBytes = Buffer.byteLength(JSON.stringify({ envelope, payload: req.payload }), 'utf8');
    if (storedBytes > MAX_STORED_MESSAGE_BYTES) throw tooLarge('payload', 'The stored message', MAX_STORED_MESSAGE_BYTES, storedBytes, 'bytes');

    const relayExpiry = Math.min(req.expiresAtMs ?? Infinity, nowMs + config.relayTtl * 1000);
    const security: Security = {
      trust_level: signed ? (recipient.tenant === sender.tenant ? 'verified' : 'external') : 'untrusted',
      signature_verified: signed !== undefined,
      sender_authenticated: true,
      injection_flags: [],
    };
    const msg: QueuedMessage = {
      id,
      envelope,
      payload: req.payload,
      queued_at: envelope.timestamp,
      expires_at: isoTime(relayExpiry),
      sender_public_key: signed ? sender.public_key_hex : '',
      security,
    };

    // Issue the write, push to live sessions, then answer only once the write is durable.
    const json = JSON.stringify(msg);
    const { seq, committed } = store.append(recipient.id, { msg, json, expiresAtMs: relayExpiry, senderId: sender.id, receipt: req.receipt });
    const pushed = this.ctx.presence.pushLive(recipient.id, seq, json);
    await committed;
    if (pushed && req.receipt) this.ctx.presence.onHandOver(id, 'websocket');
    this.ctx.presence.afterCommit(recipient.id);
    const result: RouteResult = pushed
      ? { id, status: 'delivered', method: 'websocket', delivered_at: isoTime(Date.now()), thread_id: envelope.thread_id }
      : { id, status: 'queued', method: 'relay', queued_at: msg.queued_at, thread_id: envelope.thread_id };
    return result;
  }

  /**
   * §12.4. A replied-to message lends its thread only if the sender took part in it (sent or
   * received it): another agent's message ids must reveal nothing.
   */
  private threadId(req: RouteRequest, id: string, sender: AgentRecord): string {
    if (req.thread_id !== undefined) return req.thread_id;
    if (req.in_reply_to !== undefined) {
      const idx = this.ctx.store.getMessageIndex(req.in_reply_to);
      return idx && (idx.r === sender.id || idx.f === sender.id) ? idx.t : req.in_reply_to;
    }
    return id;
  }

  /**
   * §11: a present signature must verify for one of (full or short `from`) x (`to` as sent or
   * expanded). Returns the strings that verified, or undefined when unsigned and allowed.
   */
  private async verify(sender: AgentRecord, req: RouteRequest, toExpanded: string): Promise<{ from: string; to: string } | undefined> {
    if (!req.signatureBytes) {
      if (this.ctx.config.signatures === 'required') {
        throw new AmpError('signature_missing', 'This provider requires signed messages; sign the canonical string with your Ed25519 key', { field: 'signature' });
      }
      return undefined;
    }
    const key = this.agents.keyObject(sender);
    const hash = payloadHash(req.payload);
    const froms = sender.short_address === sender.address ? [sender.address] : [sender.address, sender.short_address];
    const tos = req.to === toExpanded ? [req.to] : [req.to, toExpanded];
    for (const from of froms) {
      for (const to of tos) {
        const data = Buffer.from(canonicalString({ from, to, subject: req.subject, priority: req.priority, in_reply_to: req.in_reply_to, payload_hash: hash }), 'utf8');
        if (await verifyEd25519(key, data, req.signatureBytes)) return { from, to };
      }
    }
    throw new AmpError('signature_invalid', 'Message signature does not verify with the sender\'s registered key', {
      field: 'signature',
      details: { from: sender.address },
    });
  }
}
