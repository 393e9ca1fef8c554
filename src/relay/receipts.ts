// Receipts (spec §16). A delivery receipt goes once, at the first hand-over of a message whose
// sender asked for one: a WebSocket push, the first pending list that contains it, or an ack
// that came first. A read receipt goes when the recipient says so. Both reach the sender's live
// sessions, or wait in a per-sender outbox (≤ 1000, 7 days) flushed after its next `connected`.
// In cluster mode the outbox is shared: a receipt made on a node where the sender has no session
// is kept there, and the node where the sender is online hands it over when it lands (keptFor).
// Messages that came from another provider or mesh host have no local sender: no receipt is kept
// for them (receipts do not travel between providers), and the read answers `read_receipt_sent: false`.

import { AmpError, isoTime } from '../../proto/index.js';
import type { Logger } from 'pino';
import type { AgentRecord, DirectoryStore, QueueStore, RecordsStore } from '../store/types.js';
import { Frame } from './frames.js';
import type { AgentSession, Sessions } from './sessions.js';

const OUTBOX_CAP = 1000;
const OUTBOX_TTL_MS = 7 * 24 * 3600 * 1000;

export type HandOverMethod = 'websocket' | 'relay' | 'webhook';

export interface ReadAnswer {
  read_receipt_sent: boolean;
  already_read?: true;
  /** Why no receipt was sent: `sender_not_local` (the sender is on another provider or mesh host). */
  reason?: 'sender_not_local';
}

/** The sender of a message that arrived from a federated provider or a mesh peer (foreign.ts `source`). */
const FOREIGN_SENDER = /^(federation|mesh):/;

export class Receipts {
  /** Receipts dropped because a sender's outbox was full. */
  outboxDropped = 0;

  constructor(
    private readonly stores: { queue: QueueStore; directory: DirectoryStore; records: RecordsStore },
    private readonly sessions: Sessions,
    private readonly logger: Logger,
  ) {}

  /** A message reached its recipient; send the delivery receipt if one is owed. */
  handedOver(messageId: string, method: HandOverMethod): void {
    const { queue, directory } = this.stores;
    const m = queue.message(messageId);
    if (!m?.receiptRequested || m.deliveryReceiptSent || FOREIGN_SENDER.test(m.senderId)) return;
    if (!queue.markReceipt(messageId, 'delivery')) return;
    const recipient = directory.getAgent(m.recipientId);
    this.toAgent(m.senderId, {
      type: 'message.delivered',
      data: { id: messageId, to: recipient?.address ?? '', delivered_at: isoTime(Date.now()), method },
    });
  }

  /** `POST messages/{id}/read` by the recipient. */
  read(reader: AgentRecord, messageId: string): ReadAnswer {
    const { queue } = this.stores;
    const m = queue.message(messageId);
    if (!m || m.recipientId !== reader.id || m.expiresAt <= Date.now()) {
      throw new AmpError('not_found', 'Message not found', { field: 'id' });
    }
    const first = queue.markReceipt(messageId, 'read');
    if (FOREIGN_SENDER.test(m.senderId)) {
      return first
        ? { read_receipt_sent: false, reason: 'sender_not_local' }
        : { read_receipt_sent: false, already_read: true, reason: 'sender_not_local' };
    }
    if (!first) return { read_receipt_sent: true, already_read: true };
    this.toAgent(m.senderId, {
      type: 'message.read',
      data: { id: messageId, read_at: isoTime(Date.now()), reader: reader.address },
    });
    return { read_receipt_sent: true };
  }

  private toAgent(agentId: string, frame: Record<string, unknown>): void {
    const f = new Frame(frame);
    if (this.sessions.control(agentId, f)) return;
    this.outboxDropped += this.stores.records.pushOutbox(agentId, f.json, Date.now() + OUTBOX_TTL_MS, OUTBOX_CAP);
  }

  /**
   * Cluster mode: frames kept for the agent landed in the shared outbox (made on another node, or
   * here while it had no session). Its sessions on this node get them: every session, as a receipt
   * made here reaches every live session.
   */
  keptFor(agentId: string): void {
    const { records } = this.stores;
    if (this.sessions.of(agentId).size === 0) return;
    records
      .settled()
      .then(() => {
        if (this.sessions.of(agentId).size === 0) return;
        for (const json of records.takeOutbox(agentId, Date.now()))
          this.sessions.control(agentId, new Frame(undefined, json));
      })
      .catch((e: unknown) => this.logger.warn({ err: e }, 'receipt outbox flush failed'));
  }

  /**
   * After `connected`: hand over what was kept while the agent was offline, once every outbox
   * write issued so far has committed (a receipt kept a moment ago is then included).
   */
  flush(s: AgentSession): void {
    const { records } = this.stores;
    records
      .settled()
      .then(() => {
        if (s.closed) return;
        for (const json of records.takeOutbox(s.agent.id, Date.now())) s.conn.send(new Frame(undefined, json));
      })
      .catch((e: unknown) => this.logger.warn({ err: e }, 'receipt outbox flush failed'));
  }
}
