// The recipient's side of the relay queue over REST (spec §15): peek the pending list, ack one,
// ack a batch. Another agent's message id is indistinguishable from an unknown one (404).

import {
  AmpError,
  type BatchAckRequest,
  DEFAULT_PENDING_LIMIT,
  MAX_PENDING_LIMIT,
  invalidField,
  isAcceptedMessageId,
  missingField,
  type QueuedMessage,
} from '../../proto/index.js';
import type { AckOutcome, AgentRecord, QueueStore } from '../store/types.js';
import type { RelayObserver, Via } from './observer.js';
import type { Receipts } from './receipts.js';
import { effectiveStatus } from './suspension.js';

function assertActive(agent: AgentRecord): void {
  if (effectiveStatus(agent, Date.now()) === 'suspended')
    throw new AmpError('agent_suspended', 'This agent is suspended');
}

/** `limit` query value: default 10, clamped to 100; < 1 or not a number is 400. */
export function parseLimit(raw: string | null): number {
  if (raw === null || raw === '') return DEFAULT_PENDING_LIMIT;
  if (!/^\d+$/.test(raw.trim())) throw invalidField('limit', 'limit must be a positive whole number');
  const n = Number(raw.trim());
  if (n < 1) throw invalidField('limit', 'limit must be at least 1');
  return Math.min(n, MAX_PENDING_LIMIT);
}

/** Who must hear of acks besides the observer (the webhook adapter: its held items leave). */
export interface AckListener {
  acked(agentId: string, ids: readonly string[]): Promise<void>;
}

export class Inbox {
  constructor(
    private readonly queue: QueueStore,
    private readonly receipts: Receipts,
    private readonly observer: RelayObserver,
    private readonly webhooks?: AckListener,
  ) {}

  list(agent: AgentRecord, limit: number): { messages: QueuedMessage[]; count: number; remaining: number } {
    assertActive(agent);
    const page = this.queue.listPending(agent.id, limit, Date.now());
    for (const m of page.messages) this.receipts.handedOver(m.id, 'relay');
    return { messages: page.messages, count: page.messages.length, remaining: page.remaining };
  }

  /** Ack ids for the agent (REST or WebSocket); returns how many were newly acknowledged. */
  async ack(agent: AgentRecord, ids: readonly string[], via: Via = 'rest'): Promise<AckOutcome[]> {
    assertActive(agent);
    const owed: string[] = [];
    const outcomes = await this.queue.ack(agent.id, ids, Date.now(), (id) => owed.push(id));
    for (const id of owed) this.receipts.handedOver(id, 'relay');
    const acked =
      outcomes.length === 1 ? (outcomes[0] === 'acked' ? ids : []) : ids.filter((_, i) => outcomes[i] === 'acked');
    if (acked.length > 0) {
      this.observer.acked(via, agent.id, acked);
      // Always (an index lookup when nothing is held): a session's agent record may predate its webhook.
      await this.webhooks?.acked(agent.id, acked);
    }
    return outcomes;
  }

  async ackOne(
    agent: AgentRecord,
    id: string | null | undefined,
  ): Promise<{ acknowledged: true; already_acked?: true }> {
    if (id === null || id === undefined || id === '') throw missingField('id');
    if (!isAcceptedMessageId(id)) throw invalidField('id', 'id is not a valid message id');
    const [outcome] = await this.ack(agent, [id]);
    if (outcome === 'unknown') throw new AmpError('not_found', 'Message not found', { field: 'id' });
    return outcome === 'already_acked' ? { acknowledged: true, already_acked: true } : { acknowledged: true };
  }

  /** The ids were checked by decodeBatchAckBody. */
  async ackBatch(agent: AgentRecord, { ids }: BatchAckRequest): Promise<{ acknowledged: number }> {
    const outcomes = await this.ack(agent, ids);
    return { acknowledged: outcomes.filter((o) => o === 'acked').length };
  }
}
