// The outbox of cluster mode: frames (receipts) kept for an agent that had no session on the node
// that made them, shared by every node so the agent gets them on whichever node it is (or next
// comes) online. One stream `${prefix}_OUTBOX`:
// - `amp.<prefix>.ob.f.<agent>`: a kept frame (header Amp-Expires). The stream keeps at most `cap`
//   per subject, the oldest discarded, and nothing older than `maxAgeMs`.
// - `amp.<prefix>.ob.t.<agent>`: a take mark `{ upTo }`: the agent's frames up to that stream seq
//   were handed over (on some node); every node's mirror drops them.
// Every node mirrors the stream in memory (StreamMirror) and answers takeOutbox from it. A take
// publishes the mark first, then purges the frames it took from the stream (a mark that could not
// be published leaves them: they may be handed over again, never lost). `onOutbox` tells when a
// frame for an agent landed in the mirror (from any node), so the node where the agent is online
// hands it over at once. Two nodes taking one agent's frames at the same moment both hand them
// over: a receipt may, rarely, reach the agent twice.

import { DiscardPolicy, JetStreamApiError, type JsMsg, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { APPLY_TIMEOUT_MS } from './failures.js';
import { decodeToken, encodeToken } from './keys.js';
import type { NatsParts } from './parts.js';
import { storeFailure } from './queue-errors.js';
import { StreamMirror } from './stream-mirror.js';

export interface NatsOutboxOptions {
  /** Frames kept per agent (the relay's outbox cap); default 1000. */
  cap?: number;
  /** The stream's max age (the relay keeps a frame 7 days); default 7 days. */
  maxAgeMs?: number;
  /** Publish timeout (ms); default 5000. */
  timeoutMs?: number;
  /** Failures of background writes (a kept frame, a take mark), for the log. */
  onBackgroundError?: (what: string, err: unknown) => void;
}

interface Kept {
  seq: number;
  exp: number;
  json: string;
}

const H_EXP = 'Amp-Expires';
const API_STREAM_NOT_FOUND = 10059;
const DEFAULT_CAP = 1000;
const DEFAULT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Take marks of an agent are all "up to everything" once it is deleted. */
const ALL = Number.MAX_SAFE_INTEGER;

const nanos = (ms: number) => ms * 1_000_000;

export class NatsOutbox {
  readonly streamName: string;
  private readonly root: string;
  private readonly cap: number;
  private readonly maxAgeMs: number;
  private readonly timeoutMs: number;
  private readonly byAgent = new Map<string, Kept[]>();
  private readonly listeners = new Set<(agentId: string) => void>();
  private readonly writes = new Set<Promise<void>>();
  private readonly mirror: StreamMirror;
  private opened = false;
  private closed = false;

  constructor(
    private readonly parts: NatsParts,
    private readonly opts: NatsOutboxOptions = {},
  ) {
    this.streamName = `${parts.prefix}_OUTBOX`;
    this.root = `amp.${encodeToken(parts.prefix)}.ob`;
    this.cap = opts.cap ?? DEFAULT_CAP;
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.mirror = new StreamMirror(parts, {
      stream: this.streamName,
      filter: `${this.root}.>`,
      lastPerSubject: false,
      apply: (m) => this.apply(m),
    });
  }

  async open(): Promise<void> {
    const { jsm, replicas } = this.parts;
    const cfg = {
      name: this.streamName,
      subjects: [`${this.root}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs_per_subject: this.cap,
      discard: DiscardPolicy.Old,
      max_age: nanos(this.maxAgeMs),
      num_replicas: replicas,
    };
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (e) {
      if (!(e instanceof JetStreamApiError && e.code === API_STREAM_NOT_FOUND)) throw e;
      await jsm.streams.add(cfg);
    }
    await this.mirror.start();
    this.opened = true;
  }

  close(): void {
    this.closed = true;
    this.mirror.close();
  }

  /** After a kept frame for `agentId` landed in this node's mirror (written by any node). */
  onOutbox(cb: (agentId: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Keep a frame (written in the background; `settled` waits for it); returns how many the cap drops. */
  push(agentId: string, frameJson: string, expiresAtMs: number, cap: number): number {
    if (!this.opened || this.closed) throw storeFailure(new Error('the outbox is not open'));
    const have = this.byAgent.get(agentId)?.length ?? 0;
    const limit = Math.min(cap, this.cap);
    const h = headers();
    h.set(H_EXP, String(expiresAtMs));
    this.track(
      'outbox frame',
      this.parts.js
        .publish(this.frameSubject(agentId), frameJson, { headers: h, timeout: this.timeoutMs })
        .then(async (ack) => {
          await this.mirror.reached(ack.seq, APPLY_TIMEOUT_MS);
        }),
    );
    return Math.max(0, have - limit + 1);
  }

  /** Take (and remove everywhere) the agent's kept frames, oldest first; expired ones are dropped. */
  take(agentId: string, nowMs: number): string[] {
    const kept = this.byAgent.get(agentId);
    if (!kept || kept.length === 0 || this.closed) return [];
    this.byAgent.delete(agentId);
    const upTo = kept[kept.length - 1]!.seq;
    this.track('outbox take', this.forget(agentId, upTo));
    return kept.filter((k) => k.exp > nowMs).map((k) => k.json);
  }

  /** Every write issued so far (frames, take marks) is done (or failed) and applied here. */
  async settled(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  /** Drop the agent's frames (deregistration). */
  async dropAgent(agentId: string): Promise<void> {
    this.byAgent.delete(agentId);
    try {
      await this.forget(agentId, ALL);
    } catch (e) {
      throw storeFailure(e);
    }
  }

  /** Drop expired frames from memory (the stream's max age removes them there). */
  sweep(nowMs: number): number {
    let n = 0;
    for (const [agentId, kept] of this.byAgent) {
      const live = kept.filter((k) => k.exp > nowMs);
      n += kept.length - live.length;
      if (live.length === 0) this.byAgent.delete(agentId);
      else if (live.length < kept.length) this.byAgent.set(agentId, live);
    }
    return n;
  }

  private frameSubject(agentId: string): string {
    return `${this.root}.f.${encodeToken(agentId)}`;
  }

  /** The take mark first, then the purge: the stream never ends with a purged frame. */
  private async forget(agentId: string, upTo: number): Promise<void> {
    const { js, jsm } = this.parts;
    await js.publish(`${this.root}.t.${encodeToken(agentId)}`, JSON.stringify({ upTo }), { timeout: this.timeoutMs });
    const purge = upTo === ALL ? {} : { seq: upTo + 1 };
    await jsm.streams.purge(this.streamName, { filter: this.frameSubject(agentId), ...purge });
  }

  private track(what: string, p: Promise<void>): void {
    const w = p.catch((e: unknown) => this.opts.onBackgroundError?.(what, e));
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }

  private apply(m: JsMsg): void {
    const rest = m.subject.slice(this.root.length + 1);
    const kind = rest.slice(0, 2);
    const agentId = decodeToken(rest.slice(2));
    if (kind === 't.') {
      const { upTo } = m.json<{ upTo: number }>();
      const kept = this.byAgent.get(agentId);
      if (!kept) return;
      const left = kept.filter((k) => k.seq > upTo);
      if (left.length === 0) this.byAgent.delete(agentId);
      else this.byAgent.set(agentId, left);
      return;
    }
    if (kind !== 'f.') return;
    const exp = Number(m.headers?.get(H_EXP));
    if (!(exp > Date.now())) return;
    let kept = this.byAgent.get(agentId);
    if (!kept) {
      kept = [];
      this.byAgent.set(agentId, kept);
    }
    kept.push({ seq: m.seq, exp, json: m.string() });
    if (kept.length > this.cap) kept.splice(0, kept.length - this.cap);
    for (const cb of this.listeners) cb(agentId);
  }
}
