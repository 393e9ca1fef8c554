// Webhook delivery (spec §18). The relay decides WHEN: a message appended for a recipient with a
// webhook_url, while it has no live session (or always, with prefer_websocket false), is handed to
// the outbound engine as `webhook:<agent id>`. The adapter here decides HOW, at each attempt: the
// message must still be pending and, with prefer_websocket, the recipient offline (else
// `obsolete`); while the agent is suspended or awaiting approval the item is held (deferred to the
// end of a timed suspension or the message's expiry) and released when the agent is active again;
// the request is signed with a fresh timestamp and sent under the SSRF rules (fetchChecked); 2xx
// acks the message (receipt `method: webhook`, counted as a `webhook` ack), 4xx or a refused target
// parks it (it stays in the relay queue for polling), 5xx, timeouts and network errors are retried
// by WEBHOOK_POLICY.

import type { Logger } from 'pino';
import type { QueuedMessage } from '../../proto/index.js';
import { webhookSignatureHeader } from '../crypto/request-signing.js';
import {
  type Adapter,
  type AllowList,
  fetchChecked,
  type OutboundEngine,
  type OutboundItem,
  type Outcome,
  UrlRefusedError,
} from '../outbound/index.js';
import type { AgentRecord, DirectoryStore, QueueStore } from '../store/types.js';
import { VERSION } from '../version.js';
import type { RelayObserver } from './observer.js';
import type { Receipts } from './receipts.js';
import type { Sessions } from './sessions.js';
import { effectiveStatus } from './suspension.js';

export const WEBHOOK_KIND = 'webhook';

/** Why an item waits while its agent is not active (the reason a reactivation releases). */
export const HELD_INACTIVE = 'agent not active';

/** The outbound target of an agent's webhook. */
export function webhookTarget(agentId: string): string {
  return `${WEBHOOK_KIND}:${agentId}`;
}

/** What the adapter needs of the outbound engine. */
export type WebhookEngine = Pick<OutboundEngine, 'enqueue' | 'release' | 'cancel'>;

export interface WebhookDeps {
  queue: QueueStore;
  directory: DirectoryStore;
  sessions: Sessions;
  receipts: Receipts;
  logger: Logger;
  allow: AllowList;
  observer: Pick<RelayObserver, 'acked'>;
}

export class Webhooks implements Adapter {
  private engine: WebhookEngine | undefined;

  constructor(private readonly deps: WebhookDeps) {}

  /** The engine, once built (it needs this adapter first). */
  attach(engine: WebhookEngine): void {
    this.engine = engine;
  }

  /** The agent's webhook URL or secret changed: what was parked is tried again (PATCH agents/me). */
  async changed(agentId: string): Promise<void> {
    await this.engine?.release(webhookTarget(agentId));
  }

  /**
   * The agent was deregistered: everything its webhook holds (parked, deferred by a suspension,
   * waiting for a retry) is attempted at once, finds no agent and leaves the queue unsent.
   */
  async gone(agentId: string): Promise<void> {
    await this.engine?.release(webhookTarget(agentId), () => true);
  }

  /**
   * The agent is active again (unsuspended, reactivated by AID): what its suspension held is tried
   * now. Items parked by a receiver's 4xx stay parked (a suspension changed nothing about them).
   * Never throws: a failed write leaves the items held (and the messages pollable).
   */
  async reactivated(agentId: string): Promise<void> {
    try {
      await this.engine?.release(webhookTarget(agentId), (reason) => reason === HELD_INACTIVE);
    } catch (err) {
      this.deps.logger.warn({ agent: agentId, err }, 'webhook items held by a suspension not released');
    }
  }

  /**
   * The recipient acked these messages (REST or WebSocket): what its webhook still held of them
   * (parked by a 4xx, waiting for a retry) leaves the outbound queue. Never throws (an item left
   * behind finds the message acked at its next attempt, or expires with it).
   */
  async acked(agentId: string, ids: readonly string[]): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    try {
      for (const id of ids) await engine.cancel(webhookTarget(agentId), id);
    } catch (err) {
      this.deps.logger.warn({ agent: agentId, err }, 'acked webhook items not removed');
    }
  }

  /**
   * A message was appended for `recipient` (issued in the same turn as the append): queue it for
   * the webhook when §18 says so. Resolves once the outbound item is durable (or at once). An agent
   * not active (awaiting approval) gets it queued too: held at the attempt until it is active.
   */
  afterAppend(recipient: AgentRecord, id: string, json: string, expiresAt: number): Promise<unknown> | undefined {
    if (!this.engine || !recipient.webhook_url || !recipient.webhook_secret) return undefined;
    if (recipient.prefer_websocket && this.deps.sessions.isOnline(recipient.id)) return undefined;
    return this.engine.enqueue(webhookTarget(recipient.id), { id, body: json, expiresAt });
  }

  async deliver(item: OutboundItem, signal: AbortSignal): Promise<Outcome> {
    const { queue, directory } = this.deps;
    const now = Date.now();
    // Still pending for its recipient (the queue's in-memory index), not `ackedAt`: the queue
    // remembers an ack only for messages expiring within a day.
    const m = queue.message(item.id);
    if (!m || !queue.isPending(m.recipientId, item.id, now)) return 'obsolete';
    const agent = directory.getAgent(m.recipientId);
    if (!agent?.webhook_url || !agent.webhook_secret) return 'obsolete';
    if (effectiveStatus(agent, now) !== 'active') return held(agent, item, now);
    // prefer_websocket: a live session got the message pushed when it connected; the session owns it.
    if (agent.prefer_websocket && this.deps.sessions.isOnline(agent.id)) return 'obsolete';
    const msg = JSON.parse(item.body) as QueuedMessage;
    const body = JSON.stringify({ envelope: msg.envelope, payload: msg.payload });
    const timestamp = String(Math.floor(now / 1000));
    const headers = {
      'content-type': 'application/json',
      'user-agent': `amp-relay/${VERSION}`,
      'x-amp-signature': webhookSignatureHeader(agent.webhook_secret, timestamp, body),
      'x-amp-timestamp': timestamp,
      'x-amp-message-id': item.id,
      'x-amp-delivery-attempt': String(item.attempts + 1),
    };
    const sent = fetchChecked(agent.webhook_url, { allow: this.deps.allow, method: 'POST', headers, body });
    return this.outcome(agent, item.id, await abortable(sent, signal));
  }

  private async outcome(agent: AgentRecord, id: string, r: Awaited<ReturnType<typeof fetchChecked>> | Error) {
    if (r instanceof UrlRefusedError) {
      if (r.reason === 'unresolvable') return { retry: true as const, reason: r.message };
      this.deps.logger.warn({ agent: agent.id, id, reason: r.reason }, `webhook target refused: ${r.message}`);
      return { park: true as const, reason: `refused: ${r.message}` };
    }
    if (r instanceof Error) return { retry: true as const, reason: r.message };
    if (r.status >= 200 && r.status < 300) {
      const { queue, receipts, observer } = this.deps;
      const [acked] = await queue.ack(agent.id, [id], Date.now(), (owed) => receipts.handedOver(owed, 'webhook'));
      if (acked === 'acked') observer.acked('webhook', agent.id, [id]);
      return 'delivered' as const;
    }
    if (r.status >= 400 && r.status < 500) return { park: true as const, reason: `HTTP ${r.status}` };
    return { retry: true as const, reason: `HTTP ${r.status}` };
  }
}

/**
 * An item of an agent that is not active waits, no attempt counted: until the end of an operator's
 * timed suspension (then tried again, durably, a restart included) or else the message's expiry,
 * unless `reactivated` brings it forward; parked when neither time is known.
 */
function held(agent: AgentRecord, item: OutboundItem, now: number): Outcome {
  const ends = agent.suspension?.until;
  const until = Math.min(ends != null && ends > now ? ends : Number.POSITIVE_INFINITY, item.expiresAt ?? Infinity);
  if (Number.isFinite(until)) return { defer: true, reason: HELD_INACTIVE, until };
  return { park: true, reason: HELD_INACTIVE };
}

/** The request's result or its error; rejects as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T | Error> {
  const settled = p.then(
    (v) => v,
    (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
  );
  if (signal.aborted) return Promise.reject(signal.reason);
  return Promise.race([
    settled,
    new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
  ]);
}
