// route(): the path of one message (spec §11, §12). Transport parses, this decides, the store
// persists, then live sessions get the push. The answer is given only after the commit.

import {
  AmpError,
  ERROR_CATALOG,
  type ErrorCode,
  AMP_VERSION,
  canonicalString,
  decodeRouteBody,
  isoTime,
  newMessageId,
  payloadHash,
  type AttachmentMeta,
  type AttachmentRef,
  type Envelope,
  type QueuedMessage,
  type RouteRequest,
  type RouteResult,
  type Security,
} from '../../proto/index.js';
import { sha256Base64 } from '../crypto/hash.js';
import { enforce } from './ratelimit.js';
import type { AgentRecord, DirectoryStore, QueueStore, RecordsStore } from '../store/types.js';
import type { Push } from './push.js';
import type { Receipts } from './receipts.js';
import type { Agents } from './agents.js';
import type { RelayContext } from './context.js';
import type { AbuseCounters } from './abuse.js';
import type { Via } from './observer.js';
import type { Webhooks } from './webhooks.js';
import type { OutboundMessage, RemoteRoute, RemoteRouting } from './remote.js';
import { effectiveStatus } from './suspension.js';

const QUEUE_FULL_RETRY_AFTER_S = 60;
/**
 * Cluster mode: how long an idempotency key's claim lives, and how long another node's request
 * with the key waits for its answer (longer than a delivery takes while the store answers).
 */
const IDEM_CLAIM_MS = 15_000;

/** §22: the attachments a message names, checked and then claimed for it (src/attachments/gate.ts). */
export interface AttachmentChecks {
  check(
    sender: AgentRecord,
    refs: readonly AttachmentRef[],
    nowMs: number,
    endpoint?: () => string,
  ): CarriedAttachments;
}

export interface CarriedAttachments {
  metas: AttachmentMeta[];
  warnings: string[];
  /** Issued in the same turn as the append; resolves once durable. */
  claim(messageId: string, recipientId: string): Promise<void>;
}

export interface RouteOptions {
  headerIdempotencyKey?: string;
  /** How the message came in (metrics, logs); default REST. */
  via?: Via;
  /** Set by route() itself once the mesh peers named the host of an address unknown here. */
  remote?: { route: RemoteRoute; address: string };
}

export interface RouteOutcome {
  result: RouteResult;
  /** The answer of an earlier, identical request (same idempotency key, or the same signed message). */
  replayed: boolean;
}

/** Digest of what makes two route requests the same (§12.5). */
function requestDigest(req: RouteRequest, toExpanded: string, hash: string): string {
  const fields = [
    toExpanded,
    req.subject,
    req.priority,
    req.in_reply_to ?? '',
    req.thread_id ?? '',
    req.expires_at ?? '',
    hash,
    req.receipt ? '1' : '0',
  ];
  return sha256Base64(fields.join('\n'));
}

/** One message on its way, once checked: who sends it to whom, and what verified. */
interface Delivery {
  via: Via;
  sender: AgentRecord;
  recipient: AgentRecord;
  /** Set for an address on a mesh peer or another provider; `recipient` is then the sender. */
  remote?: RemoteRoute;
  req: RouteRequest;
  /** `to` expanded to the full address. */
  toExpanded: string;
  /** The (from, to) strings the signature verified for; undefined when unsigned. */
  signed: { from: string; to: string } | undefined;
  nowMs: number;
}

/** The (from, to) strings a signature verified for. */
type Signed = { from: string; to: string };

/** Marks a verification that cannot be answered at once. */
const LATER = Symbol('later');

/** A route request past its checks, before its signature is verified. */
interface Checked {
  sender: AgentRecord;
  recipient: AgentRecord;
  remote?: RemoteRoute;
  req: RouteRequest;
  toExpanded: string;
  nowMs: number;
  hashOf: () => string;
  via: Via;
}

function badSignature(sender: AgentRecord): AmpError {
  return new AmpError('signature_invalid', "Message signature does not verify with the sender's registered key", {
    field: 'signature',
    details: { from: sender.address },
  });
}

/** A message past admission: its answer, once committed (a promise in an object, so it is not awaited). */
interface Admitted {
  outcome: Promise<RouteOutcome>;
  /** Cluster mode: resolves once the key's claim is decided (and the append issued when it was won). */
  turn?: Promise<void>;
}

/** The answer to a request with an idempotency key; `replayed` when another node's was stored. */
interface IdemDone {
  digest: string;
  result: RouteResult;
  replayed?: boolean;
}

export class MessageRouter {
  /** Requests with an idempotency key being processed now: concurrent repeats wait for them. */
  private readonly inFlightIdem = new Map<string, Promise<IdemDone>>();
  /** Per sender, the admission of its latest route request (see route()). */
  private readonly admitting = new Map<string, Promise<void>>();
  /** 404s for an address naming this mesh host: not asked of the peers. */
  private readonly notForPeers = new WeakSet<AmpError>();

  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
    private readonly stores: { queue: QueueStore; directory: DirectoryStore; records: RecordsStore },
    private readonly push: Push,
    private readonly receipts: Receipts,
    private readonly abuse: AbuseCounters,
    /** Absent when the provider has no `attachments` capability. */
    private readonly attachments?: AttachmentChecks,
    /** §18: hands a message to the recipient's webhook when it has one. */
    private readonly webhooks?: Pick<Webhooks, 'afterAppend'>,
  ) {}

  /** §19: mesh peers and federated providers, when configured (set once the outbound engine exists). */
  private remote: RemoteRouting | undefined;

  useRemote(remote: RemoteRouting): void {
    this.remote = remote;
  }

  /** Spec §12.3 step 2, before the body is read: the sender's route buckets. */
  senderRateLimit(sender: AgentRecord): Record<string, string> {
    try {
      return enforce(
        this.ctx.limits.take([
          ['route', sender.id],
          ['route_hour', sender.id],
        ]),
        'sender',
      );
    } catch (e) {
      this.abuse.refused(sender.id, e);
      throw e;
    }
  }

  /**
   * Per-sender order: one sender's messages are appended in the order their requests arrived,
   * whatever the verifier. A request whose checks and signature verification complete at once
   * (unsigned, or libsodium) appends before route() first awaits, so it keeps its place with no
   * bookkeeping. One that must wait (node:crypto verifies on the libuv pool, whose callbacks
   * complete out of order) is registered as the sender's latest admission; every later request of
   * that sender then waits for it to be appended or refused before it appends.
   */
  async route(sender: AgentRecord, body: unknown, opts: RouteOptions = {}): Promise<RouteOutcome> {
    const before = this.admitting.get(sender.id);
    let admitted: Admitted;
    try {
      const c = this.check(sender, body, opts);
      // A key claimed across nodes (cluster mode) is decided asynchronously: it takes its turn too.
      const signed = before || this.claims(c.req) ? LATER : this.verifyNow(c);
      admitted = signed === LATER ? await this.admitInTurn(c, before) : this.admit(c, signed);
    } catch (e) {
      const onPeer = await this.askPeers(e, opts);
      if (onPeer) return this.route(sender, body, { ...opts, remote: onPeer });
      this.abuse.refused(sender.id, e);
      throw e;
    }
    const outcome = await admitted.outcome;
    this.abuse.sent(sender.id);
    return outcome;
  }

  /** The chained path: verify (async), wait for the sender's previous request, then admit. */
  private async admitInTurn(c: Checked, before: Promise<void> | undefined): Promise<Admitted> {
    const senderId = c.sender.id;
    let open!: () => void;
    const mine = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.admitting.set(senderId, mine);
    try {
      const signed = c.req.signatureBytes ? await this.verify(c) : this.unsigned();
      if (before) await before;
      const admitted = this.admit(c, signed);
      await admitted.turn;
      return admitted;
    } finally {
      open();
      if (this.admitting.get(senderId) === mine) this.admitting.delete(senderId);
    }
  }

  /** Steps 3-8 before the signature: body, sender and recipient status, policy, rate limits. */
  private check(sender: AgentRecord, body: unknown, opts: RouteOptions): Checked {
    const { config } = this.ctx;
    const nowMs = Date.now();
    const req = decodeRouteBody(body, {
      nowMs,
      headerIdempotencyKey: opts.headerIdempotencyKey || undefined,
      attachments: this.attachments !== undefined,
    });

    // The record as stored now: the caller's copy may predate a suspension (a WS session's does).
    const status = effectiveStatus(this.agents.find(sender.id) ?? sender, nowMs);
    if (status === 'suspended')
      throw new AmpError('agent_suspended', 'This agent is suspended and cannot send messages');
    if (status === 'pending')
      throw new AmpError(
        'forbidden',
        'This agent awaits approval of its Agent Identity registration and cannot send messages yet',
      );
    if (req.from !== undefined) {
      const from = req.from.toLowerCase();
      if (from !== sender.address && from !== sender.short_address) {
        throw new AmpError('forbidden', `'from' must be the authenticated agent (${sender.address})`, {
          field: 'from',
        });
      }
    }

    // The payload hash is wanted by the signature check and the replay digest: made once.
    let hash: string | undefined;
    const hashOf = () => (hash ??= payloadHash(req.payload));
    const via = opts.via ?? 'rest';
    const dest = this.destination(req.to, sender, opts);
    if ('remote' in dest) {
      // A mesh org address names its tenant; `name@<host id>` does not: its host checks (see deliverRemote).
      const { tenant } = dest.remote;
      if (config.crossTenant === 'deny' && tenant !== undefined && tenant !== sender.tenant)
        throw new AmpError('forbidden', 'Messages to other tenants are not allowed on this provider', { field: 'to' });
      return { sender, recipient: sender, req, nowMs, hashOf, via, ...dest };
    }
    const { agent: recipient, address: toExpanded } = dest;
    if (effectiveStatus(recipient, nowMs) === 'suspended')
      throw new AmpError('recipient_suspended', 'The recipient agent is suspended', { field: 'to' });
    if (config.crossTenant === 'deny' && recipient.tenant !== sender.tenant) {
      throw new AmpError('forbidden', 'Messages to other tenants are not allowed on this provider', { field: 'to' });
    }

    enforce(this.ctx.limits.take([['receive', recipient.id]]), 'recipient');
    return { sender, recipient, req, toExpanded, nowMs, hashOf, via };
  }

  /** Step 6: the local agent an address names, or the mesh peer or provider it lives on. */
  private destination(
    to: string,
    sender: AgentRecord,
    opts: RouteOptions,
  ): { agent: AgentRecord; address: string } | { remote: RemoteRoute; toExpanded: string } {
    if (opts.remote) return { remote: opts.remote.route, toExpanded: opts.remote.address };
    const exp = this.agents.expandRecipient(to, sender);
    const directory = this.remote?.directory;
    const remote = directory?.route(exp.address, exp.provider);
    if (remote) return { remote, toExpanded: exp.address };
    const local = directory?.localize(exp.address);
    try {
      // localize() writes our main domain (a provider alias is the same address).
      const found = this.agents.resolveExpanded(
        local ? { address: local, provider: this.ctx.config.providerDomain } : exp,
      );
      return { agent: found.agent, address: exp.address };
    } catch (e) {
      // `name@<this host's id>` is here or nowhere: the peers are not asked for it.
      if (e instanceof AmpError && directory?.ownHost?.(exp.address)) this.notForPeers.add(e);
      throw e;
    }
  }

  /** An own-domain address unknown here, with a mesh: the peer that has it (asked once, cached there). */
  private async askPeers(e: unknown, opts: RouteOptions): Promise<RouteOptions['remote']> {
    if (!this.remote || opts.remote || !(e instanceof AmpError) || e.code !== 'not_found' || e.field !== 'to') {
      return undefined;
    }
    const address = e.details.address;
    if (typeof address !== 'string' || this.notForPeers.has(e)) return undefined;
    const { directory } = this.remote;
    const route = await directory.lookup(directory.localize(address) ?? address);
    return route && { route, address };
  }

  /**
   * Steps 9-10 up to the append: resolves once the message is in the recipient's queue (or
   * refused, or a replay), to the promise of the answer.
   */
  private admit(c: Checked, signed: Signed | undefined): Admitted {
    const { sender, req, toExpanded, hashOf } = c;
    if (signed && this.stores.directory.findRevokedKey(sender.fingerprint)) {
      throw new AmpError('key_revoked', "The sender's key has been revoked", { field: 'signature' });
    }
    if (c.remote?.kind === 'federation' && !signed) {
      throw new AmpError('signature_missing', 'Messages to another provider must be signed (§19.1)', {
        field: 'signature',
      });
    }
    const d: Delivery = { ...c, signed };

    // §12.5: an idempotency key, or else the signature itself, names the request; a repeat within
    // the window gets the first answer and creates nothing.
    const idemKey = req.idempotency_key ?? (req.signature !== undefined ? `sig:${req.signature}` : undefined);
    // deliver() appends before its first await: once called, the message has its place.
    if (idemKey === undefined) return { outcome: this.deliver(d).then((result) => ({ result, replayed: false })) };
    const digest = requestDigest(req, toExpanded, hashOf());
    const slot = `${sender.id}\n${idemKey}`;
    const replay = (rec: { digest: string; result: unknown }): RouteOutcome => {
      if (rec.digest !== digest && req.idempotency_key !== undefined) {
        throw new AmpError('duplicate_idempotency_key', 'This idempotency_key was used for a different request', {
          field: 'idempotency_key',
        });
      }
      return { result: rec.result as RouteResult, replayed: true };
    };
    const inFlight = this.inFlightIdem.get(slot);
    if (inFlight) return { outcome: inFlight.then(replay) };
    const stored = this.stores.records.getIdempotency(sender.id, idemKey, c.nowMs);
    if (stored) return { outcome: Promise.resolve(replay(stored)) };
    const idem = { key: idemKey, digest };
    const claimed = this.claimThenDeliver(d, idem);
    const work: Promise<IdemDone> = claimed?.work ?? this.deliver(d, idem).then((result) => ({ digest, result }));
    this.inFlightIdem.set(slot, work);
    const outcome = work.then((w) => (w.replayed ? replay(w) : { result: w.result, replayed: false }));
    outcome.finally(() => this.inFlightIdem.delete(slot)).catch(() => {});
    return { outcome, turn: claimed?.turn };
  }

  /** Whether a request's key is claimed across nodes before delivery (cluster mode). */
  private claims(req: RouteRequest): boolean {
    return (
      this.stores.records.claimIdempotency !== undefined &&
      (req.idempotency_key !== undefined || req.signature !== undefined)
    );
  }

  /**
   * Cluster mode (§12.5 across nodes): the key is claimed in the shared store first; the node that
   * wins delivers, one that loses answers the winner's stored result. A failed delivery releases
   * the claim (an expired record), so a retry is decided afresh.
   */
  private claimThenDeliver(
    d: Delivery,
    idem: { key: string; digest: string },
  ): { work: Promise<IdemDone>; turn: Promise<void> } | undefined {
    const claim = this.stores.records.claimIdempotency?.(d.sender.id, idem.key, idem.digest, IDEM_CLAIM_MS);
    if (!claim) return undefined;
    const work = claim.then((got): Promise<IdemDone> | IdemDone => {
      if (got === 'claimed') {
        return this.deliver(d, idem).then(
          (result) => ({ digest: idem.digest, result }),
          (e: unknown) => this.release(d.sender, idem, e),
        );
      }
      if (got === 'pending') {
        throw new AmpError(
          'store_unavailable',
          'A request with this idempotency key is still in progress on another node; retry shortly',
          { retryAfter: 1 },
        );
      }
      return { digest: got.digest, result: got.result as unknown as RouteResult, replayed: true };
    });
    // Its callback runs after work's, which issued the append when the claim was won.
    const turn = claim.then(
      () => {},
      () => {},
    );
    return { work, turn };
  }

  /** A claimed key whose delivery failed: released (stored as expired), then the failure goes on. */
  private async release(sender: AgentRecord, idem: { key: string; digest: string }, e: unknown): Promise<never> {
    const expired = { digest: idem.digest, result: {}, expiresAt: 0 };
    await this.stores.records.putIdempotency(sender.id, idem.key, expired).catch(() => {});
    throw e;
  }

  /** Steps 9-12: queue cap, build, append + push, commit, answer. */
  private async deliver(d: Delivery, idem?: { key: string; digest: string }): Promise<RouteResult> {
    if (d.remote) return this.deliverRemote(d, d.remote, idem);
    const { queue } = this.stores;
    const { sender, recipient, req, nowMs } = d;
    this.assertRoom(recipient, nowMs);
    // Checked here, after the idempotency check: a repeat is answered without claiming again.
    const carried = req.attachments && this.attachments?.check(sender, req.attachments, nowMs);
    const { msg, relayExpiry } = this.buildMessage(d, carried);
    const { id, envelope } = msg;

    // Issue the write, push to live sessions, then answer only once the write is durable.
    const json = JSON.stringify(msg);
    const { seq, committed } = queue.append(recipient.id, {
      msg,
      json,
      expiresAtMs: relayExpiry,
      senderId: sender.id,
      receipt: req.receipt,
    });
    const pushed = this.push.pushLive(recipient.id, seq, id, json);
    const delivered = (): RouteResult => ({
      id,
      status: 'delivered',
      method: 'websocket',
      delivered_at: isoTime(Date.now()),
      thread_id: envelope.thread_id,
    });
    let result: RouteResult = pushed
      ? delivered()
      : { id, status: 'queued', method: 'relay', queued_at: msg.queued_at, thread_id: envelope.thread_id };
    if (carried && carried.warnings.length > 0) result.warnings = carried.warnings;
    const claimed = carried?.claim(id, recipient.id);
    const hooked =
      pushed && recipient.prefer_websocket ? undefined : this.webhooks?.afterAppend(recipient, id, json, relayExpiry);
    // The idempotency record commits in the same transaction as the message.
    const remembered = idem && this.remember(sender, idem, result, nowMs);
    try {
      // A failed commit rejects them all (507): nothing was stored, remembered, claimed or handed to
      // a webhook. Most messages have none of these: then only the append is awaited.
      const extra = remembered || claimed || hooked;
      await (extra ? Promise.all([committed, remembered, claimed, hooked]) : committed);
    } catch (e) {
      // A store that caps the queue at commit (cluster mode, a race across nodes) answers as assertRoom.
      throw e instanceof AmpError && e.code === 'queue_full' ? this.queueFull(recipient) : e;
    } finally {
      this.push.afterCommit(recipient.id);
    }
    // A store that numbers messages at commit (cluster mode: seq 0 here) pushes them by catch-up,
    // right above: the answer says so when one of the recipient's sockets on this node got it.
    if (!pushed && seq === 0 && this.push.reached(recipient.id, queue.seqOf?.(recipient.id, id))) {
      result = { ...delivered(), ...(result.warnings ? { warnings: result.warnings } : {}) };
    }
    this.ctx.observer.routed(d.via, id, sender.id, recipient.id);
    if (pushed && req.receipt) this.receipts.handedOver(id, 'websocket');
    return result;
  }

  /**
   * §19: a message for a mesh peer or another provider. Built like a local one (its id, timestamp
   * and the sender's signature travel with it), made durable in the target's outbound queue, and
   * answered `queued`/`relay`, or `delivered`/`mesh` when a mesh peer took it within its wait.
   */
  private async deliverRemote(
    d: Delivery,
    remote: RemoteRoute,
    idem?: { key: string; digest: string },
  ): Promise<RouteResult> {
    const { sender, req, nowMs } = d;
    if (req.attachments) {
      throw new AmpError('attachments_not_supported', 'Attachments cannot be sent to another host or provider', {
        field: 'payload.attachments',
      });
    }
    const outbox = this.remote!.outbox;
    const { msg, relayExpiry } = this.buildMessage(d);
    const { id, envelope } = msg;
    const body: OutboundMessage = {
      envelope,
      payload: msg.payload,
      sender_public_key: d.signed ? sender.public_key_pem : '',
    };
    // AMP_CROSS_TENANT=deny: the tenant of `name@<host id>` is known at that host only; it checks.
    if (this.ctx.config.crossTenant === 'deny' && remote.kind === 'mesh') body.same_tenant = true;
    const first = remote.waitMs > 0 ? outbox.firstAttempt(remote.target, id, remote.waitMs) : undefined;
    const queued = outbox.enqueue(remote.target, {
      id,
      body: JSON.stringify(body),
      expiresAt: relayExpiry,
      // One sender's messages to one recipient go in order; a held-back one delays no other recipient's.
      group: `${sender.id} ${d.toExpanded}`,
    });
    const result: RouteResult = {
      id,
      status: 'queued',
      method: 'relay',
      queued_at: msg.queued_at,
      thread_id: envelope.thread_id,
    };
    const remembered = idem && this.remember(sender, idem, result, nowMs);
    await (remembered ? Promise.all([queued, remembered]) : queued);
    const took = await first;
    if (took?.outcome === 'refused') {
      // The peer refused it at once (e.g. no such agent there): the sender hears why, nothing stays queued.
      // Its idempotency record is forgotten too (expired at once), so a retry is decided afresh.
      const forgot =
        idem &&
        this.stores.records.putIdempotency(sender.id, idem.key, { digest: idem.digest, result: {}, expiresAt: 0 });
      await Promise.all([outbox.cancel(remote.target, id), forgot]);
      throw peerRefusal(remote, took.status, took.body, d.toExpanded);
    }
    this.ctx.observer.routed(d.via, id, sender.id, remote.target);
    if (took?.outcome !== 'delivered') return result;
    const delivered: RouteResult = {
      id,
      status: 'delivered',
      method: 'mesh',
      remote_host: remote.remoteHost,
      delivered_at: isoTime(Date.now()),
      thread_id: envelope.thread_id,
    };
    // §12.5: a repeat gets this answer, not the `queued` one remembered with the item.
    if (idem) await this.remember(sender, idem, delivered, nowMs);
    return delivered;
  }

  /** §12.5: the answer kept for an idempotency key, committed with the message. */
  private remember(sender: AgentRecord, idem: { key: string; digest: string }, result: RouteResult, nowMs: number) {
    return this.stores.records.putIdempotency(sender.id, idem.key, {
      digest: idem.digest,
      result: { ...result },
      expiresAt: nowMs + this.ctx.config.idempotencyTtl * 1000,
    });
  }

  /** Step 9: the recipient's queue cap (§12.3); the message is refused, never evicted. */
  private assertRoom(recipient: AgentRecord, nowMs: number): void {
    if (this.stores.queue.pendingCount(recipient.id, nowMs) < this.ctx.config.maxQueue) return;
    throw this.queueFull(recipient);
  }

  /** 429 queue_full for the recipient, whether this check or the store's cap refused the message. */
  private queueFull(recipient: AgentRecord): AmpError {
    const { maxQueue } = this.ctx.config;
    return new AmpError('queue_full', `Recipient's queue is full (${maxQueue} messages); retry later`, {
      details: { recipient: recipient.address, limit: maxQueue },
      retryAfter: QUEUE_FULL_RETRY_AFTER_S,
    });
  }

  /** Step 10: the server's envelope (id, timestamp, thread) and the message as queued. */
  private buildMessage(d: Delivery, carried?: CarriedAttachments): { msg: QueuedMessage; relayExpiry: number } {
    const { sender, recipient, req, toExpanded, signed, nowMs } = d;
    const { config } = this.ctx;
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
    // The §8.3 stored-message limit was enforced by decodeRouteBody on an upper bound of this
    // envelope; measuring it again here would serialise every payload once more.
    const relayExpiry = Math.min(req.expiresAtMs ?? Number.POSITIVE_INFINITY, nowMs + config.relayTtl * 1000);
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
    if (carried) {
      msg.attachments = carried.metas;
      if (carried.warnings.length > 0) msg.warnings = carried.warnings;
    }
    return { msg, relayExpiry };
  }

  /**
   * §12.4. A replied-to message lends its thread only if the sender took part in it (sent or
   * received it): another agent's message ids must reveal nothing.
   */
  private threadId(req: RouteRequest, id: string, sender: AgentRecord): string {
    if (req.thread_id !== undefined) return req.thread_id;
    if (req.in_reply_to !== undefined) {
      const replied = this.stores.queue.message(req.in_reply_to);
      const tookPart = replied && (replied.recipientId === sender.id || replied.senderId === sender.id);
      return tookPart ? replied.threadId : req.in_reply_to;
    }
    return id;
  }

  /** An unsigned message: accepted as untrusted unless the policy requires signatures. */
  private unsigned(): undefined {
    if (this.ctx.config.signatures === 'required') {
      throw new AmpError(
        'signature_missing',
        'This provider requires signed messages; sign the canonical string with your Ed25519 key',
        { field: 'signature' },
      );
    }
    return undefined;
  }

  /**
   * §11: a present signature must verify for one of (full or short `from`) x (`to` as sent or
   * expanded). Returns the strings that verified.
   */
  /** The canonical strings a signature may cover: (full or short `from`) x (`to` as sent or expanded). */
  private *signingInputs(c: Checked): Generator<{ signed: Signed; data: Buffer }> {
    // Built one at a time: the first (full `from`, `to` as sent) is the one that usually verifies.
    const { sender, req, toExpanded } = c;
    const froms = sender.short_address === sender.address ? [sender.address] : [sender.address, sender.short_address];
    const tos = req.to === toExpanded ? [req.to] : [req.to, toExpanded];
    const hash = c.hashOf();
    for (const from of froms) {
      for (const to of tos) {
        const fields = { from, to, subject: req.subject, priority: req.priority, in_reply_to: req.in_reply_to };
        yield { signed: { from, to }, data: Buffer.from(canonicalString({ ...fields, payload_hash: hash }), 'utf8') };
      }
    }
  }

  /** §11 at once where the verifier is synchronous: the strings that verified, or LATER. */
  private verifyNow(c: Checked): Signed | undefined | typeof LATER {
    if (!c.req.signatureBytes) return this.unsigned();
    const { verifier } = this.agents;
    for (const { signed, data } of this.signingInputs(c)) {
      const ok = verifier.verifyNow(c.sender.public_key_pem, data, c.req.signatureBytes);
      if (ok === undefined) return LATER;
      if (ok) return signed;
    }
    throw badSignature(c.sender);
  }

  /** §11: a present signature must verify for one of the signing inputs; the strings that did. */
  private async verify(c: Checked): Promise<Signed> {
    for (const { signed, data } of this.signingInputs(c)) {
      if (await this.agents.verifier.verify(c.sender.public_key_pem, data, c.req.signatureBytes!)) return signed;
    }
    throw badSignature(c.sender);
  }
}

/** A mesh peer's refusal, told to the sender as the peer's own code where we know it. */
function peerRefusal(remote: RemoteRoute, status: number, body: unknown, to: string): AmpError {
  const b = (body ?? {}) as { error?: unknown; message?: unknown };
  const host = remote.remoteHost ?? remote.target;
  const said = typeof b.message === 'string' ? b.message : `HTTP ${status}`;
  const details = { remote_host: host, remote_status: status, address: to };
  if (status === 404)
    return new AmpError('not_found', `Agent not found (at mesh host ${host})`, { field: 'to', details });
  const known = typeof b.error === 'string' && Object.hasOwn(ERROR_CATALOG, b.error);
  // The peer's 401 is about the hosts' authentication, not the sender's key.
  const code = known && b.error !== 'unauthorized' ? (b.error as ErrorCode) : 'forbidden';
  return new AmpError(code, `Mesh host ${host} refused the message: ${said}`, { field: 'to', details });
}
