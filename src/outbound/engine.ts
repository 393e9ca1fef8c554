// The one delivery engine for messages leaving this process. Items wait in durable per-target
// queues (OutboundStore); the engine attempts the due ones through the adapter of the target's kind
// (`mesh:…`, `fed:…`, `webhook:…`), at most `concurrency` at once per target, retries failures
// after the policy's backoff, pauses a failing target with its breaker, and parks what the
// adapter refuses for good. Delivery is at least once: an item leaves the queue only after its
// adapter said `delivered`, so a crash between the two repeats it (receivers dedupe by id).
//
// Wake-ups: each target has at most one timer, set for the earliest moment something may start
// (the next item's nextAt, or the end of a breaker's cool-down); an attempt that ends pumps its
// target again. Nothing polls.

import { EventEmitter } from 'node:events';
import type { OutboundCounts, OutboundItem, OutboundStore } from '../store/types.js';
import { Breaker, type BreakerState } from './breaker.js';
import { type Clock, type ClockTimer, systemClock } from './clock.js';
import { DEFAULT_POLICY, type PolicyOverride, retryDelay, type TargetPolicy, withPolicy } from './policy.js';
import { OutboundStats } from './stats.js';
import type { Adapter, KindStats, OutboundEvents, Outcome, Refusal, TargetStats } from './types.js';

export interface OutboundEngineOptions {
  store: OutboundStore;
  /** By target kind: the part of the target id before ':' (`mesh`, `fed`, `webhook`). */
  adapters: Record<string, Adapter>;
  /** By target kind; a kind without one gets DEFAULT_POLICY. */
  policies?: Record<string, TargetPolicy | PolicyOverride>;
  clock?: Clock;
  /** In [0, 1); the jitter source. */
  random?: () => number;
}

export interface EnqueueInput {
  /** The message id (a second enqueue of it for the same target is a duplicate). */
  id: string;
  body: string;
  /** Dropped unattempted from then on (ms); default never. */
  expiresAt?: number | null;
}

interface TargetRun {
  target: string;
  kind: string;
  adapter: Adapter;
  policy: TargetPolicy;
  breaker: Breaker;
  inFlight: Map<string, AbortController>;
  timer: ClockTimer | undefined;
  timerAt: number;
}

/** The kind of a target id: `webhook:agt_…` -> `webhook`. */
export function targetKind(target: string): string {
  const i = target.indexOf(':');
  return i <= 0 ? '' : target.slice(0, i);
}

/** An event to emit once an attempt's slot is free. */
type Report = (() => void) | undefined;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class OutboundEngine extends EventEmitter<OutboundEvents> {
  private readonly store: OutboundStore;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly runs = new Map<string, TargetRun>();
  private readonly attempts = new Set<Promise<void>>();
  private readonly counters = new OutboundStats();
  private running = false;
  private closing = false;

  constructor(private readonly opts: OutboundEngineOptions) {
    super();
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
  }

  /** Start attempting: every target that holds items (after a restart too) is pumped. */
  start(): void {
    if (this.running || this.closing) return;
    this.running = true;
    for (const target of this.store.outboundTargets()) this.pump(target);
  }

  /**
   * Queue a message for a target; resolves once it is durable (the caller may then answer
   * `queued`). `added` is false for an id already queued for that target.
   */
  async enqueue(target: string, input: EnqueueInput): Promise<{ added: boolean }> {
    const kind = targetKind(target);
    if (!this.opts.adapters[kind]) throw new Error(`no outbound adapter for target ${JSON.stringify(target)}`);
    const { added } = await this.store.outboundEnqueue(target, {
      id: input.id,
      body: input.body,
      createdAt: this.clock.now(),
      expiresAt: input.expiresAt ?? null,
    });
    this.pump(target);
    return { added };
  }

  /** Drop an item that no longer needs sending (an attempt in flight finishes, its result ignored). */
  cancel(target: string, id: string): Promise<boolean> {
    return this.store.outboundRemove(target, id);
  }

  /** Parked items of the target are attempted again (e.g. after its webhook URL changed). */
  async release(target: string): Promise<number> {
    const n = await this.store.outboundRelease(target, this.clock.now());
    this.pump(target);
    return n;
  }

  /**
   * Drop up to `limit` expired items that no attempt will reach soon: parked ones, and pending ones
   * behind a long retry delay or an open breaker (an attempt drops an expired item too). For the
   * store's periodic sweep; resolves with how many went.
   */
  async sweepExpired(limit = 1000): Promise<number> {
    let dropped = 0;
    for (const { target, id } of this.store.outboundExpired(this.clock.now(), limit)) {
      if (this.runs.get(target)?.inFlight.has(id)) continue;
      const item = this.store.outboundGet(target, id);
      if (!item || !(await this.store.outboundRemove(target, id))) continue;
      this.counters.kind(targetKind(target)).expired++;
      this.emit('expired', item);
      dropped++;
    }
    return dropped;
  }

  /** Counters per target kind (cumulative since start). */
  kindStats(): Record<string, KindStats> {
    return this.counters.snapshot();
  }

  /** Queue depth of every target holding items, with its breaker and attempts in flight. */
  targetStats(): TargetStats[] {
    return this.store.outboundTargets().map((target) => this.targetStat(target));
  }

  targetStat(target: string): TargetStats {
    const run = this.runs.get(target);
    const counts: OutboundCounts = this.store.outboundCount(target);
    return {
      target,
      kind: targetKind(target),
      ...counts,
      inFlight: run?.inFlight.size ?? 0,
      breaker: run?.breaker.state ?? 'closed',
      consecutiveFailures: run?.breaker.failures ?? 0,
    };
  }

  /**
   * Stop: no new attempts, timers cleared, attempts in flight aborted and awaited. Their items stay
   * queued as they were (an attempt that had already succeeded is still removed). Call before the
   * store closes.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.running = false;
    for (const run of this.runs.values()) {
      run.timer?.cancel();
      run.timer = undefined;
      for (const ac of run.inFlight.values()) ac.abort(new Error('outbound engine closing'));
    }
    while (this.attempts.size > 0) await Promise.allSettled([...this.attempts]);
  }

  private run(target: string): TargetRun | undefined {
    let run = this.runs.get(target);
    if (run) return run;
    const kind = targetKind(target);
    const adapter = this.opts.adapters[kind];
    if (!adapter) return undefined; // kept in the store until an adapter for it is configured
    const policy = withPolicy(DEFAULT_POLICY, this.opts.policies?.[kind]);
    run = {
      target,
      kind,
      adapter,
      policy,
      breaker: new Breaker(policy.breaker),
      inFlight: new Map(),
      timer: undefined,
      timerAt: 0,
    };
    this.runs.set(target, run);
    return run;
  }

  /** Start what may start now; set the target's timer for the next moment something may. */
  private pump(target: string): void {
    if (!this.running) return;
    const run = this.run(target);
    if (!run) return;
    const now = this.clock.now();
    const before = run.breaker.state;
    const free = Math.max(0, Math.min(run.policy.concurrency - run.inFlight.size, run.breaker.admit(now)));
    if (run.breaker.state !== before) this.emit('breaker', target, run.breaker.state);
    const due = this.store.outboundDue(target, now, free, (id) => run.inFlight.has(id));
    for (const item of due.items) this.begin(run, item);
    if (due.nextAt === null) {
      this.forgetIfIdle(run);
      return;
    }
    // Full or paused with items due: an attempt's end (or the cool-down) wakes the target.
    const wake = run.breaker.state === 'open' ? Math.max(run.breaker.openUntil, due.nextAt) : due.nextAt;
    if (wake > now) this.wakeAt(run, wake);
  }

  private wakeAt(run: TargetRun, at: number): void {
    if (run.timer && run.timerAt <= at) return;
    run.timer?.cancel();
    run.timerAt = at;
    run.timer = this.clock.setTimer(() => {
      run.timer = undefined;
      this.pump(run.target);
    }, at - this.clock.now());
  }

  /** A target with nothing queued, nothing in flight and a closed breaker needs no memory. */
  private forgetIfIdle(run: TargetRun): void {
    if (run.inFlight.size > 0 || run.timer || run.breaker.state !== 'closed' || run.breaker.failures > 0) return;
    const c = this.store.outboundCount(run.target);
    if (c.pending === 0 && c.parked === 0) this.runs.delete(run.target);
  }

  private begin(run: TargetRun, item: OutboundItem): void {
    const ac = new AbortController();
    run.inFlight.set(item.id, ac);
    run.breaker.started();
    // The outcome's event goes out once the slot is free and the target pumped again, so whoever
    // hears it sees the engine's next step already scheduled.
    const p: Promise<void> = this.attempt(run, item, ac).then(
      (report) => {
        this.finish(run, item.id, p);
        report?.();
      },
      (e: unknown) => {
        this.finish(run, item.id, p);
        this.emit('storeError', run.target, e);
      },
    );
    this.attempts.add(p);
  }

  private finish(run: TargetRun, id: string, p: Promise<void>): void {
    run.inFlight.delete(id);
    this.attempts.delete(p);
    if (!this.closing) this.pump(run.target);
  }

  /** One attempt; resolves with the report of its outcome (an event to emit), if any. */
  private async attempt(run: TargetRun, item: OutboundItem, ac: AbortController): Promise<Report> {
    const started = this.clock.now();
    if (item.expiresAt !== null && item.expiresAt <= started) {
      run.breaker.neutral();
      if (!(await this.store.outboundRemove(run.target, item.id))) return;
      this.counters.kind(run.kind).expired++;
      return () => this.emit('expired', item);
    }
    const outcome = await this.deliver(run, item, ac);
    const ms = this.clock.now() - started;
    // Closing: the item stays as it was, unless it was delivered (sending it again would repeat it).
    if (this.closing && outcome !== 'delivered') return;
    this.counters.attempt(run.kind, ms);
    return this.settle(run, item, outcome, ms);
  }

  /** The adapter's outcome; a rejection or the attempt timeout is a `retry`. */
  private async deliver(run: TargetRun, item: OutboundItem, ac: AbortController): Promise<Outcome> {
    const timeoutMs = run.policy.attemptTimeoutMs;
    let timedOut = false;
    const timer = this.clock.setTimer(() => {
      timedOut = true;
      ac.abort(new Error(`attempt timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      const outcome = await run.adapter.deliver(item, ac.signal);
      if (timedOut && outcome !== 'delivered') return { retry: true, reason: `timed out after ${timeoutMs} ms` };
      return outcome;
    } catch (e) {
      return { retry: true, reason: timedOut ? `timed out after ${timeoutMs} ms` : errorText(e) };
    } finally {
      timer.cancel();
    }
  }

  private async settle(run: TargetRun, item: OutboundItem, outcome: Outcome, ms: number): Promise<Report> {
    const { target, kind, breaker } = run;
    const stats = this.counters.kind(kind);
    if (outcome === 'delivered' || outcome === 'obsolete') {
      let closed: Report;
      if (outcome === 'delivered') closed = this.breakerSuccess(run);
      else breaker.neutral();
      if (!(await this.store.outboundRemove(target, item.id))) return closed;
      stats[outcome]++;
      return () => {
        closed?.();
        if (outcome === 'delivered') this.emit('delivered', item, ms);
        else this.emit('obsolete', item);
      };
    }
    const attempts = item.attempts + 1;
    if ('park' in outcome) {
      const closed = this.breakerSuccess(run); // the target answered
      const parked = await this.park(run, item, attempts, outcome.reason, outcome.refusal);
      return () => {
        closed?.();
        parked?.();
      };
    }
    stats.failures++;
    const wasOpen = breaker.state === 'open';
    breaker.failure(this.clock.now());
    const opened = !wasOpen && breaker.state === 'open';
    const delay = retryDelay(run.policy.retry, attempts, this.random);
    let report: Report;
    if (delay === null) {
      report = await this.park(run, item, attempts, `gave up after ${attempts} attempts: ${outcome.reason}`);
    } else {
      const nextAt = this.clock.now() + Math.max(delay, outcome.retryAfterMs ?? 0);
      const kept = await this.store.outboundAttempted(target, item.id, attempts, nextAt, outcome.reason);
      const next = { ...item, attempts, nextAt, lastError: outcome.reason };
      if (kept) report = () => this.emit('retry', next, outcome.reason, nextAt);
    }
    return () => {
      if (opened) this.emit('breaker', target, 'open');
      report?.();
    };
  }

  private async park(
    run: TargetRun,
    item: OutboundItem,
    attempts: number,
    reason: string,
    refusal?: Refusal,
  ): Promise<Report> {
    if (!(await this.store.outboundPark(run.target, item.id, attempts, reason))) return;
    this.counters.kind(run.kind).parked++;
    return () => this.emit('parked', { ...item, attempts, state: 'parked', lastError: reason }, reason, refusal);
  }

  /** Close the breaker; the report of that transition, if it was one. */
  private breakerSuccess(run: TargetRun): Report {
    const was: BreakerState = run.breaker.state;
    run.breaker.success();
    if (was !== 'closed') return () => this.emit('breaker', run.target, 'closed');
  }
}
