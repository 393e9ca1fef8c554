// Following a stream in order, for every mirror of the store: one ordered consumer and a callback
// per message. The consumer lives on one NATS server; when that server dies, the stream's leader
// moves, the connection comes back, or the client's own recovery gives up, the consumer simply
// stops delivering. So the follower watches it and recreates it, starting right after the last
// stream seq it handed over, whenever:
// - its iterator ends or errors, or the client reports it gone (consumer_deleted,
//   consumer_not_found, stream_not_found, no_responders, heartbeats_missed);
// - nothing at all (no message, no heartbeat) came for WATCHDOG_MS while connected;
// - the connection reconnected (the consumer may be gone with the server it lived on);
// - a caller says it is behind (`resync`: a write waited for a seq the stream holds).
// Recreating is tried again with a bounded backoff until it works; each recreation is logged.
// `ready` resolves once every message the stream held when following started has been handed over.

import {
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JsMsg,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/** Heartbeat asked of the server for each pull (ms). */
const HEARTBEAT_MS = 1000;
/** A pull request's life (ms). */
const EXPIRES_MS = 5000;
/** Silence (no message, no heartbeat, no status) after which the consumer is recreated. */
const WATCHDOG_MS = 3500;
/** Backoff between attempts to recreate: first, doubling, at most. */
const BACKOFF_FIRST_MS = 200;
const BACKOFF_MAX_MS = 2000;
/** How often `ready` asks the consumer while the first load runs. */
const READY_POLL_MS = 50;

/** Notifications that mean the consumer no longer delivers. */
const DEAD = new Set([
  'heartbeats_missed',
  'consumer_deleted',
  'consumer_not_found',
  'stream_not_found',
  'no_responders',
]);

export interface FollowOptions {
  stream: string;
  /** Subject filter; the whole stream when absent. */
  filter?: string;
  /** The first load delivers only the last message of each subject (KV buckets). */
  lastPerSubject?: boolean;
  /** The first load starts at this stream seq (default: the first message). */
  startSeq?: number;
  onMessage(m: JsMsg): void;
  /** Told when the consumer is recreated and why (for the log, at warn). */
  onWarn?(what: string, err?: unknown): void;
  /** Told once a recreated consumer delivers again (after a resync). */
  onResumed?(): void;
}

export class Follower {
  readonly ready: Promise<void>;
  private markReady: () => void = () => {};
  private isReady = false;
  private last: number;
  private stopped = false;
  private gen = 0;
  private consumer: Consumer | undefined;
  private messages: ConsumerMessages | undefined;
  /** Wakes the run loop: the current consumer is to be replaced (the reason). */
  private kick: ((why: string) => void) | undefined;
  private lastLife = Date.now();
  private connected = true;
  private recreating = false;
  private readonly watchdog: NodeJS.Timeout;
  private readonly statusIter: AsyncIterable<{ type: string }> & { stop(): void };

  constructor(
    private readonly js: JetStreamClient,
    nc: NatsConnection,
    private readonly opts: FollowOptions,
  ) {
    this.last = Math.max(0, (opts.startSeq ?? 1) - 1);
    this.ready = new Promise<void>((resolve) => {
      this.markReady = () => {
        if (this.isReady) return;
        this.isReady = true;
        resolve();
      };
    });
    const statusIter = nc.status() as unknown as AsyncIterable<{ type: string }> & { stop(): void };
    this.statusIter = statusIter;
    void (async () => {
      for await (const s of statusIter) {
        if (s.type === 'disconnect') this.connected = false;
        else if (s.type === 'reconnect') {
          this.connected = true;
          this.resync('the connection to NATS came back');
        }
      }
    })().catch(() => {});
    this.watchdog = setInterval(() => {
      if (this.connected && !this.recreating && Date.now() - this.lastLife > WATCHDOG_MS) {
        this.resync(`no message nor heartbeat for ${WATCHDOG_MS} ms`);
      }
    }, 1000);
    this.watchdog.unref();
    void this.run();
  }

  /** Stream seq of the last message handed to the callback (0 if none yet). */
  get lastSeq(): number {
    return this.last;
  }

  /**
   * Claim everything up to stream seq `seq` as handed over by someone else (a catch-up read the
   * message at `seq` and knows none is stored between the last seq and it): the consumer skips
   * them. False when the consumer got there first.
   */
  take(seq: number): boolean {
    if (seq <= this.last) return false;
    this.last = seq;
    return true;
  }

  /** Whether the consumer is being recreated now (the mirror may be behind). */
  get resyncing(): boolean {
    return this.recreating;
  }

  /** Replace the consumer by a new one starting after the last seq handed over. */
  resync(why: string): void {
    if (this.stopped) return;
    this.kick?.(why);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.watchdog);
    this.statusIter.stop();
    this.kick?.('stopped');
    this.drop();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let why = '';
    while (!this.stopped) {
      if (attempt > 0 || why) this.recreating = true;
      try {
        const reason = await this.once(why !== '');
        if (this.stopped) return;
        why = reason;
        attempt = 0;
        this.opts.onWarn?.(`mirror of ${this.opts.stream}: recreating its consumer after seq ${this.last}`, reason);
      } catch (e) {
        if (this.stopped) return;
        attempt++;
        why = why || 'the consumer could not be created';
        if (attempt === 1 || attempt % 10 === 0) {
          this.opts.onWarn?.(`mirror of ${this.opts.stream}: could not recreate its consumer (try ${attempt})`, e);
        }
      }
      this.recreating = true;
      const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, attempt - 1));
      await new Promise((r) => setTimeout(r, attempt === 0 ? BACKOFF_FIRST_MS : wait).unref());
    }
  }

  /** One consumer's life: resolves with the reason it is to be replaced; rejects when it cannot start. */
  private async once(resumed: boolean): Promise<string> {
    const gen = ++this.gen;
    const { stream, filter, lastPerSubject } = this.opts;
    const copts: Partial<OrderedConsumerOptions> = {};
    if (filter) copts.filter_subjects = filter;
    if (this.last > 0 || (this.opts.startSeq ?? 1) > 1) {
      copts.deliver_policy = DeliverPolicy.StartSequence;
      copts.opt_start_seq = this.last + 1;
    } else if (lastPerSubject) copts.deliver_policy = DeliverPolicy.LastPerSubject;
    const replaced = new Promise<string>((resolve) => {
      this.kick = resolve;
    });
    const consumer = await this.js.consumers.get(stream, copts);
    const messages = await consumer.consume({
      max_messages: 512,
      idle_heartbeat: HEARTBEAT_MS,
      expires: EXPIRES_MS,
      callback: (m) => this.deliver(gen, m),
    });
    if (this.stopped || gen !== this.gen) {
      void messages.close().catch(() => {});
      return replaced;
    }
    this.consumer = consumer;
    this.messages = messages;
    this.lastLife = Date.now();
    this.recreating = false;
    if (resumed) this.opts.onResumed?.();
    if (!this.isReady) void this.pollReady(gen);
    void (async () => {
      for await (const s of messages.status()) {
        if (gen !== this.gen) break;
        // Only a heartbeat or a message says the consumer lives (other statuses can repeat forever).
        if (s.type === 'heartbeat') this.lastLife = Date.now();
        else if (DEAD.has(s.type)) this.kick?.(`the client reported ${s.type}`);
        else if (s.type === 'debug' || s.type === 'exceeded_limits') {
          this.opts.onWarn?.(`mirror of ${this.opts.stream}: the consumer reported`, JSON.stringify(s));
        }
      }
    })().catch(() => {});
    void messages.closed().then(
      () => gen === this.gen && this.kick?.('its iterator ended'),
      (e: unknown) => gen === this.gen && this.kick?.(`its iterator failed: ${String(e)}`),
    );
    const reason = await replaced;
    if (gen === this.gen) this.drop();
    return reason;
  }

  private deliver(gen: number, m: JsMsg): void {
    if (gen !== this.gen || this.stopped) return;
    this.lastLife = Date.now();
    if (m.seq <= this.last) return;
    this.last = m.seq;
    try {
      this.opts.onMessage(m);
    } finally {
      if (m.info.pending === 0) this.markReady();
    }
  }

  /** Stop the current consumer and delete it (best effort: it may be gone with its server). */
  private drop(): void {
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    this.gen++;
    if (messages) void messages.close().catch(() => {});
    if (consumer) void consumer.delete().catch(() => {});
  }

  /** The first load: done when the consumer has nothing pending and delivered nothing not handed over. */
  private async pollReady(gen: number): Promise<void> {
    while (!this.isReady && !this.stopped && gen === this.gen) {
      try {
        const ci = await this.consumer!.info();
        // Nothing delivered yet: the server reports the seq before the stream's first (a stream
        // whose messages were all deleted has first seq > 1), which is not a message to wait for.
        const handedOver = ci.delivered.consumer_seq === 0 || ci.delivered.stream_seq <= this.last;
        if (ci.num_pending === 0 && handedOver) this.markReady();
      } catch {
        // Not reachable now: asked again.
      }
      if (!this.isReady) await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
  }
}

/** Start following; resolves once the consumer exists (the first load goes on: await `ready`). */
export async function follow(js: JetStreamClient, nc: NatsConnection, opts: FollowOptions): Promise<Follower> {
  return new Follower(js, nc, opts);
}
