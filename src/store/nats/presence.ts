// Cluster-wide presence: which agents have a live WebSocket session on which node. Each node
// writes its agents into the KV bucket `${prefix}_PRESENCE` (key `<agent>.<node>`, both encoded
// tokens) and watches the whole bucket into memory. Entries live `ttlMs` (the bucket's max age);
// a heartbeat every third of it rewrites this node's entries, so a node that died (kill -9, lost
// network) shows its agents offline elsewhere after at most `ttlMs`. A first session writes at
// once, the last one closing deletes at once; a node shutting down deletes its entries.
//
// Cheap on the hot path: announce() only marks the agent; the writes go out on the next turn,
// coalesced per agent (online then offline within one turn writes nothing), fire-and-forget with
// failures handed to `onError` (the heartbeat repairs them). Reads are synchronous, from memory.
//
// Ages are taken from this node's clock when a change arrives (never compared with the NATS
// servers' clocks): an entry loaded at start counts as fresh then, so a node dead just before
// this one started may show online here for up to one more TTL.

import { type JsMsg, StorageType } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { createBucket } from './bucket.js';
import { decodeToken, encodeToken } from './kv-keys.js';
import type { NatsParts } from './parts.js';
import { StreamMirror } from './stream-mirror.js';

export interface NatsPresenceOptions {
  /** This node's id (AMP_NODE_ID). */
  nodeId: string;
  /** How long an entry lives without a heartbeat (ms). */
  ttlMs: number;
  /** A write that failed (logged; the next heartbeat writes again). */
  onError?: (what: string, err: unknown) => void;
}

/** At most this many writes in flight per heartbeat batch. */
const HEARTBEAT_BATCH = 256;
/** How long close() waits for this node's entries to be deleted. */
const CLOSE_WAIT_MS = 2000;

export class NatsPresence {
  /** agent id → node id → when this node last saw the entry written (local ms). */
  private readonly seen = new Map<string, Map<string, number>>();
  /** Agents with a session on this node (what the heartbeat rewrites). */
  private readonly live = new Set<string>();
  /** Agents whose entry this node wrote and has not deleted. */
  private readonly written = new Set<string>();
  /** Agents announced since the last flush. */
  private readonly dirty = new Set<string>();
  private flushing?: NodeJS.Immediate;
  private heartbeat?: NodeJS.Timeout;
  private beating = false;
  private kv?: KV;
  private mirror?: StreamMirror;
  private closed = false;
  private readonly bucket: string;
  private readonly me: string;

  constructor(
    private readonly parts: NatsParts,
    private readonly opts: NatsPresenceOptions,
  ) {
    this.bucket = `${parts.prefix}_PRESENCE`;
    this.me = encodeToken(opts.nodeId);
  }

  /** Create (or adopt) the bucket, load it, drop this node's leftovers, start the heartbeat. */
  async open(): Promise<void> {
    const { kvm, jsm, replicas } = this.parts;
    const { ttlMs } = this.opts;
    // Memory storage: presence is rebuilt by the heartbeats within a TTL if NATS loses it.
    const kv = await createBucket(kvm, this.bucket, { history: 1, replicas, ttl: ttlMs, storage: StorageType.Memory });
    const stream = `KV_${this.bucket}`;
    const info = await jsm.streams.info(stream);
    const maxAge = ttlMs * 1_000_000;
    if (info.config.num_replicas !== replicas || info.config.max_age !== maxAge) {
      await jsm.streams.update(stream, { ...info.config, num_replicas: replicas, max_age: maxAge });
    }
    this.kv = kv;
    const prefix = `$KV.${this.bucket}.`;
    this.mirror = new StreamMirror(this.parts, {
      stream,
      filter: `${prefix}>`,
      lastPerSubject: true,
      apply: (m) => this.apply(m.subject.slice(prefix.length), m),
    });
    await this.mirror.start();
    // A restart under the same node id: what the previous process left is not true any more.
    for (const [agent, nodes] of this.seen) if (nodes.has(this.me)) this.write(agent, false);
    this.heartbeat = setInterval(() => void this.beat(), Math.max(500, Math.floor(ttlMs / 3)));
    this.heartbeat.unref();
  }

  /** This node's first session of the agent opened (true) or its last one closed (false). */
  announce(agentId: string, online: boolean): void {
    if (this.closed) return;
    if (online) this.live.add(agentId);
    else this.live.delete(agentId);
    this.dirty.add(agentId);
    this.flushing ??= setImmediate(() => this.flush());
  }

  /** Whether another node has a live entry for the agent. */
  onlineElsewhere(agentId: string, nowMs: number = Date.now()): boolean {
    const nodes = this.seen.get(agentId);
    if (!nodes) return false;
    for (const [node, at] of nodes) if (node !== this.me && nowMs - at < this.opts.ttlMs) return true;
    return false;
  }

  /** Agents online on another node, leaving out those `skip` says (this node's own). */
  countElsewhere(skip: (agentId: string) => boolean, nowMs: number = Date.now()): number {
    let n = 0;
    for (const agentId of this.seen.keys()) if (!skip(agentId) && this.onlineElsewhere(agentId, nowMs)) n++;
    return n;
  }

  /** Stop the heartbeat, delete this node's entries (bounded wait), stop watching. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    if (this.flushing) clearImmediate(this.flushing);
    const deletes = [...this.written].map((agent) => this.remove(agent));
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)));
    await Promise.race([Promise.all(deletes), bound]);
    clearTimeout(timer);
    this.mirror?.close();
  }

  private apply(key: string, m: JsMsg): void {
    const dot = key.indexOf('.');
    if (dot < 0) return;
    const agent = decodeToken(key.slice(0, dot));
    const node = key.slice(dot + 1);
    const op = m.headers?.get('KV-Operation');
    let nodes = this.seen.get(agent);
    if (op === 'DEL' || op === 'PURGE') {
      if (!nodes) return;
      nodes.delete(node);
      if (nodes.size === 0) this.seen.delete(agent);
      return;
    }
    if (!nodes) this.seen.set(agent, (nodes = new Map()));
    nodes.set(node, Date.now());
  }

  private flush(): void {
    this.flushing = undefined;
    for (const agent of this.dirty) {
      const online = this.live.has(agent);
      if (online !== this.written.has(agent)) this.write(agent, online);
    }
    this.dirty.clear();
  }

  private write(agentId: string, online: boolean): Promise<void> {
    if (online) {
      this.written.add(agentId);
      return this.put(agentId);
    }
    this.written.delete(agentId);
    return this.remove(agentId);
  }

  private put(agentId: string): Promise<void> {
    if (!this.kv || this.parts.nc.isClosed()) return Promise.resolve();
    return this.kv.put(this.key(agentId), '1').then(
      () => {},
      (err) => this.opts.onError?.('presence: announce online', err),
    );
  }

  private remove(agentId: string): Promise<void> {
    if (!this.kv || this.parts.nc.isClosed()) return Promise.resolve();
    return this.kv.delete(this.key(agentId)).then(
      () => {},
      (err) => this.opts.onError?.('presence: announce offline', err),
    );
  }

  private key(agentId: string): string {
    return `${encodeToken(agentId)}.${this.me}`;
  }

  /** Rewrite this node's live entries; forget other nodes' entries that aged out. */
  private async beat(): Promise<void> {
    if (this.beating || this.closed) return;
    this.beating = true;
    try {
      this.prune(Date.now());
      const agents = [...this.written];
      for (let i = 0; i < agents.length && !this.closed; i += HEARTBEAT_BATCH) {
        // An agent gone offline since the list was taken is not written back.
        const batch = agents.slice(i, i + HEARTBEAT_BATCH).filter((a) => this.written.has(a));
        await Promise.all(batch.map((a) => this.put(a)));
      }
    } finally {
      this.beating = false;
    }
  }

  private prune(nowMs: number): void {
    for (const [agent, nodes] of this.seen) {
      for (const [node, at] of nodes) if (nowMs - at >= this.opts.ttlMs) nodes.delete(node);
      if (nodes.size === 0) this.seen.delete(agent);
    }
  }
}
