// Messages that arrive from a mesh peer or a federated provider (spec §19), once the transport
// and the adapter have authenticated that peer or provider and checked the sender's signature.
// The envelope is kept as the sender's provider built it (id, from, timestamp, signature), so the
// recipient verifies end to end. A repeated id from the same source is a duplicate when its content
// is the same, and `replay_detected` otherwise; the memory of ids commits with the message.

import { AmpError, canonicalJson, isoTime, payloadHash, type QueuedMessage, type Security } from '../../proto/index.js';
import { sha256Base64 } from '../crypto/hash.js';
import type { AgentRecord, QueueStore, RecordsStore } from '../store/types.js';
import type { Agents } from './agents.js';
import type { RelayContext } from './context.js';
import type { Push } from './push.js';
import { enforce } from './ratelimit.js';
import type { ForeignMessage, ForeignOutcome, RemoteDirectory } from './remote.js';
import { effectiveStatus } from './suspension.js';
import type { Webhooks } from './webhooks.js';

const QUEUE_FULL_RETRY_AFTER_S = 60;

type Answer = Omit<ForeignOutcome, 'duplicate'>;

export class ForeignInbox {
  /** Ids being appended now, so a concurrent repeat waits for the first answer. */
  private readonly inFlight = new Map<string, Promise<{ digest: string; answer: Answer }>>();
  private directory: Pick<RemoteDirectory, 'localize'> | undefined;

  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
    private readonly stores: { queue: QueueStore; records: RecordsStore },
    private readonly push: Push,
    private readonly webhooks?: Pick<Webhooks, 'afterAppend'>,
  ) {}

  /** The mesh's own-host addresses (`name@<self id>.<domain>`), once the mesh is configured. */
  useDirectory(directory: Pick<RemoteDirectory, 'localize'>): void {
    this.directory = directory;
  }

  /**
   * Appends the message for its local recipient and answers once durable. Refusals: unknown
   * recipient (404 `not_found` for a mesh peer, `recipient_not_found` for a provider), suspended
   * recipient, its receive rate, a full queue, an id seen with other content (409 `replay_detected`).
   */
  async accept(m: ForeignMessage): Promise<ForeignOutcome> {
    const nowMs = Date.now();
    const recipient = this.recipient(m);
    const digest = contentDigest(m);
    const slot = `${m.source}\n${m.envelope.id}`;
    const seen = this.inFlight.get(slot) ?? this.remembered(m, nowMs);
    if (seen) return this.repeat(await seen, digest);
    if (this.stores.queue.message(m.envelope.id)) throw replayed(m.envelope.id);
    if (effectiveStatus(recipient, nowMs) === 'suspended') {
      throw new AmpError('recipient_suspended', 'The recipient agent is suspended', { field: 'to' });
    }
    enforce(this.ctx.limits.take([['receive', recipient.id]]), 'recipient');
    this.assertRoom(recipient, nowMs);
    const work = this.append(m, recipient, digest, nowMs).then((answer) => ({ digest, answer }));
    this.inFlight.set(slot, work);
    try {
      return { ...(await work).answer, duplicate: false };
    } finally {
      this.inFlight.delete(slot);
    }
  }

  /** Our agent that `to` names (a full or short address, or the mesh's own-host form). */
  findRecipient(to: string): AgentRecord | undefined {
    return this.agents.findByAddress(this.directory?.localize(to) ?? to);
  }

  private recipient(m: ForeignMessage): AgentRecord {
    const to = m.envelope.to;
    const agent = this.findRecipient(to);
    if (agent) return agent;
    const code = m.source.startsWith('federation:') ? 'recipient_not_found' : 'not_found';
    throw new AmpError(code, 'Agent not found', { field: 'to', details: { address: to } });
  }

  private remembered(m: ForeignMessage, nowMs: number): Promise<{ digest: string; answer: Answer }> | undefined {
    const rec = this.stores.records.getIdempotency(m.source, `id:${m.envelope.id}`, nowMs);
    return rec && Promise.resolve({ digest: rec.digest, answer: rec.result as Answer });
  }

  private repeat(first: { digest: string; answer: Answer }, digest: string): ForeignOutcome {
    if (first.digest !== digest) throw replayed(first.answer.id);
    return { ...first.answer, duplicate: true };
  }

  private assertRoom(recipient: AgentRecord, nowMs: number): void {
    const { maxQueue } = this.ctx.config;
    if (this.stores.queue.pendingCount(recipient.id, nowMs) < maxQueue) return;
    throw new AmpError('queue_full', `Recipient's queue is full (${maxQueue} messages); retry later`, {
      details: { recipient: recipient.address, limit: maxQueue },
      retryAfter: QUEUE_FULL_RETRY_AFTER_S,
    });
  }

  /** Append, push to live sessions, remember the id, hand to the webhook; answer once all are durable. */
  private async append(m: ForeignMessage, recipient: AgentRecord, digest: string, nowMs: number): Promise<Answer> {
    const { config } = this.ctx;
    const { envelope } = m;
    const expiresAtMs = relayExpiry(envelope.expires_at, nowMs + config.relayTtl * 1000);
    const security: Security = {
      trust_level: m.signatureVerified ? 'external' : 'untrusted',
      signature_verified: m.signatureVerified,
      sender_authenticated: true,
      injection_flags: [],
    };
    const msg: QueuedMessage = {
      id: envelope.id,
      envelope,
      payload: m.payload,
      queued_at: isoTime(nowMs),
      expires_at: isoTime(expiresAtMs),
      sender_public_key: m.senderKeyHex,
      security,
    };
    const json = JSON.stringify(msg);
    const { seq, committed } = this.stores.queue.append(recipient.id, {
      msg,
      json,
      expiresAtMs,
      senderId: m.source,
      receipt: false,
    });
    const pushed = this.push.pushLive(recipient.id, seq, envelope.id, json);
    const answer: Answer = pushed
      ? { id: envelope.id, status: 'delivered', method: 'websocket' }
      : { id: envelope.id, status: 'queued', method: 'relay' };
    const remembered = this.stores.records.putIdempotency(m.source, `id:${envelope.id}`, {
      digest,
      result: answer,
      expiresAt: nowMs + config.idempotencyTtl * 1000,
    });
    const hooked =
      pushed && recipient.prefer_websocket
        ? undefined
        : this.webhooks?.afterAppend(recipient, envelope.id, json, expiresAtMs);
    try {
      await Promise.all([committed, remembered, hooked]);
    } finally {
      this.push.afterCommit(recipient.id);
    }
    return answer;
  }
}

/**
 * What "the same content" means for a repeated id: the envelope's fields and the payload's canonical
 * hash (the one the signature covers), so another serialisation of the same message (keys in another
 * order) is a duplicate, not a replay.
 */
function contentDigest(m: ForeignMessage): string {
  return sha256Base64(`${canonicalJson(m.envelope)}\n${payloadHash(m.payload)}`);
}

function replayed(id: string): AmpError {
  return new AmpError('replay_detected', 'This message id was already delivered with other content', {
    field: 'envelope.id',
    details: { id },
  });
}

/** The relay queue's expiry: the envelope's own `expires_at` when sooner than the relay TTL. */
function relayExpiry(expiresAt: string | undefined, ttlAt: number): number {
  const at = expiresAt === undefined ? Number.NaN : Date.parse(expiresAt);
  return Number.isFinite(at) ? Math.min(at, ttlAt) : ttlAt;
}
