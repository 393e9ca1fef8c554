// The outbound engine on a real LMDB store (temp dirs) with an in-process adapter the test scripts
// and a hand-moved clock: order, duplicates, the retry schedule, parking and release, the breaker,
// per-target concurrency, attempt timeouts, expiry, close and restart recovery. Every wait is on
// an engine or adapter event; time moves only through clock.advance.

import { rmSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  type Adapter,
  OutboundEngine,
  type OutboundEngineOptions,
  type Outcome,
  WEBHOOK_POLICY,
} from '../../src/outbound/index.js';
import { registerOutboundMetrics } from '../../src/ops/outbound-metrics.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { aborted, countEvents, deferred, FakeAdapter, until } from '../helpers/outbound.js';
import { tempDir } from '../helpers/server.js';
import { afterEachCleanup, testStores } from '../helpers/store.js';

const defer = afterEachCleanup();
const openStore = testStores('amp-outbound-', defer);
const EVENTS = ['delivered', 'retry', 'parked', 'expired', 'obsolete', 'breaker', 'storeError'];

function engine(opts: Omit<OutboundEngineOptions, 'random'>) {
  const e = new OutboundEngine({ random: () => 0, ...opts });
  const counts = countEvents(e, EVENTS);
  defer(() => e.close());
  return { e, counts };
}

describe('outbound engine (LMDB store, in-process adapter)', () => {
  it('delivers in enqueue order, once per id, and leaves nothing queued', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter();
    const { e, counts } = engine({ store, clock, adapters: { mesh: adapter }, policies: { mesh: { concurrency: 1 } } });
    const added = await Promise.all([
      e.enqueue('mesh:b', { id: 'm1', body: '{"n":1}' }),
      e.enqueue('mesh:b', { id: 'm1', body: '{"n":1}' }),
      e.enqueue('mesh:b', { id: 'm2', body: '{"n":2}' }),
    ]);
    expect(added.map((a) => a.added)).toEqual([true, false, true]);
    expect(store.outboundCount('mesh:b')).toEqual({ pending: 2, parked: 0 });
    e.start();
    await e.enqueue('mesh:b', { id: 'm3', body: '{"n":3}' });
    await until(e, 'delivered', () => counts.delivered === 3, '3 deliveries');
    expect(adapter.ids()).toEqual(['m1', 'm2', 'm3']);
    expect(adapter.calls.map((c) => c.body)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    expect(store.outboundTargets()).toEqual([]);
    expect(e.kindStats().mesh).toMatchObject({ attempts: 3, delivered: 3, failures: 0 });
    await expect(e.enqueue('nope:x', { id: 'm4', body: '{}' })).rejects.toThrow(/no outbound adapter/);
  });

  it('webhook schedule: retry after 30 s, then 2 min, then parked; release tries again', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter(() => ({ retry: true, reason: 'HTTP 503' }));
    const { e, counts } = engine({
      store,
      clock,
      adapters: { webhook: adapter },
      policies: { webhook: WEBHOOK_POLICY },
    });
    e.start();
    const t0 = clock.now();
    await e.enqueue('webhook:agt_1', { id: 'w1', body: '{}' });
    await until(e, 'retry', () => counts.retry === 1);
    expect(store.outboundGet('webhook:agt_1', 'w1')).toMatchObject({ attempts: 1, nextAt: t0 + 30_000 });
    clock.advance(29_999);
    expect(adapter.calls).toHaveLength(1);
    clock.advance(1);
    expect(adapter.calls).toHaveLength(2);
    expect(adapter.calls[1]!.attempts).toBe(1);
    await until(e, 'retry', () => counts.retry === 2);
    clock.advance(119_999);
    expect(adapter.calls).toHaveLength(2);
    clock.advance(1);
    await until(e, 'parked', () => counts.parked === 1);
    expect(store.outboundGet('webhook:agt_1', 'w1')).toMatchObject({
      state: 'parked',
      attempts: 3,
      lastError: 'gave up after 3 attempts: HTTP 503',
    });
    clock.advance(24 * 3600_000);
    expect(adapter.calls).toHaveLength(3);
    adapter.script = () => 'delivered';
    expect(await e.release('webhook:agt_1')).toBe(1);
    await until(e, 'delivered', () => counts.delivered === 1);
    expect(adapter.calls).toHaveLength(4);
    expect(e.kindStats().webhook).toMatchObject({ attempts: 4, failures: 3, parked: 1, delivered: 1 });
  });

  it('a park outcome keeps the item and never retries it; other items flow', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter((item) => (item.id === 'bad' ? { park: true, reason: 'HTTP 400' } : 'delivered'));
    const { e, counts } = engine({ store, clock, adapters: { webhook: adapter } });
    e.start();
    await e.enqueue('webhook:a', { id: 'bad', body: '{}' });
    await e.enqueue('webhook:a', { id: 'good', body: '{}' });
    await until(e, 'delivered', () => counts.delivered === 1 && counts.parked === 1);
    clock.advance(3600_000);
    expect(adapter.ids().sort()).toEqual(['bad', 'good']);
    expect(store.outboundCount('webhook:a')).toEqual({ pending: 0, parked: 1 });
    expect(e.targetStats()).toEqual([
      expect.objectContaining({ target: 'webhook:a', parked: 1, pending: 0, breaker: 'closed' }),
    ]);
  });

  it('the breaker opens after N consecutive failures, pauses the target, probes once, then closes', async () => {
    const store = openStore();
    const clock = new ManualClock();
    let down = true;
    const adapter = new FakeAdapter(() => (down ? { retry: true, reason: 'connection refused' } : 'delivered'));
    const policy = {
      concurrency: 3,
      breaker: { failures: 3, coolDownMs: 10_000 },
      retry: { baseMs: 1000, factor: 1, jitter: 0 },
    };
    const { e, counts } = engine({ store, clock, adapters: { mesh: adapter }, policies: { mesh: policy } });
    const states: string[] = [];
    e.on('breaker', (_t, s) => states.push(s));
    e.start();
    for (let i = 0; i < 6; i++) await e.enqueue('mesh:peer', { id: `m${i}`, body: '{}' });
    await until(e, 'breaker', () => states.includes('open'), 'breaker open');
    await until(e, 'retry', () => counts.retry === adapter.calls.length, 'every failure recorded');
    const atOpen = adapter.calls.length;
    expect(atOpen).toBeGreaterThanOrEqual(3);
    expect(e.targetStat('mesh:peer').breaker).toBe('open');
    clock.advance(9_999); // items are due after 1 s, but the target is paused
    expect(adapter.calls).toHaveLength(atOpen);
    clock.advance(1);
    expect(states.slice(-1)).toEqual(['half-open']);
    expect(adapter.calls).toHaveLength(atOpen + 1); // one probe, though 6 are due and 3 may run
    await until(e, 'breaker', () => states.at(-1) === 'open', 'failed probe reopens');
    clock.advance(9_999);
    expect(adapter.calls).toHaveLength(atOpen + 1);
    down = false;
    clock.advance(1);
    expect(adapter.calls).toHaveLength(atOpen + 2);
    await until(e, 'delivered', () => counts.delivered === 6, 'all delivered after recovery');
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
    expect(store.outboundTargets()).toEqual([]);
  });

  it('respects the concurrency limit of each target', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const holds: Array<(o: Outcome) => void> = [];
    const now = new Map<string, number>();
    const max = new Map<string, number>();
    const adapter = new FakeAdapter((item) => {
      now.set(item.target, (now.get(item.target) ?? 0) + 1);
      max.set(item.target, Math.max(max.get(item.target) ?? 0, now.get(item.target)!));
      const d = deferred<Outcome>();
      holds.push(d.resolve);
      return d.promise.finally(() => now.set(item.target, now.get(item.target)! - 1));
    });
    const { e, counts } = engine({ store, clock, adapters: { fed: adapter }, policies: { fed: { concurrency: 2 } } });
    for (const t of ['fed:a.example', 'fed:b.example']) {
      for (let i = 0; i < 5; i++) await e.enqueue(t, { id: `${t}-${i}`, body: '{}' });
    }
    e.start();
    for (let round = 0; round < 10 && counts.delivered < 10; round++) {
      const left = 10 - counts.delivered;
      const expected = Math.min(4, left);
      await until(adapter, 'call', () => holds.length >= expected, `${expected} attempts in flight`);
      expect(holds).toHaveLength(expected);
      expect(adapter.inFlight).toBe(expected);
      const before = counts.delivered;
      for (const release of holds.splice(0)) release('delivered');
      await until(e, 'delivered', () => counts.delivered === before + expected);
    }
    expect(counts.delivered).toBe(10);
    expect(max.get('fed:a.example')).toBe(2);
    expect(max.get('fed:b.example')).toBe(2);
    expect(adapter.maxInFlight).toBe(4);
  });

  it('an attempt that outlives its timeout is aborted and retried', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter((_item, signal) => aborted(signal));
    const { e, counts } = engine({
      store,
      clock,
      adapters: { mesh: adapter },
      policies: { mesh: { attemptTimeoutMs: 5000 } },
    });
    let reason = '';
    e.on('retry', (_i, r) => {
      reason = r;
    });
    e.start();
    await e.enqueue('mesh:slow', { id: 'm1', body: '{}' });
    expect(adapter.inFlight).toBe(1);
    clock.advance(4_999);
    expect(counts.retry).toBe(0);
    clock.advance(1);
    await until(e, 'retry', () => counts.retry === 1);
    expect(reason).toBe('timed out after 5000 ms');
    expect(adapter.inFlight).toBe(0);
  });

  it('drops an item whose expiry passed before its next attempt', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter(() => ({ retry: true, reason: 'down' }));
    const policy = { retry: { baseMs: 1000, factor: 2, jitter: 0 } };
    const { e, counts } = engine({ store, clock, adapters: { mesh: adapter }, policies: { mesh: policy } });
    e.start();
    await e.enqueue('mesh:p', { id: 'm1', body: '{}', expiresAt: clock.now() + 1500 });
    await until(e, 'retry', () => counts.retry === 1);
    clock.advance(1000);
    await until(e, 'retry', () => counts.retry === 2);
    clock.advance(2000);
    await until(e, 'expired', () => counts.expired === 1);
    expect(adapter.calls).toHaveLength(2);
    expect(store.outboundTargets()).toEqual([]);
  });

  it('metrics per target kind: depth, parked, in flight, breakers, attempts and outcomes', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const hook = new FakeAdapter((item) => (item.id === 'bad' ? { park: true, reason: 'HTTP 404' } : 'delivered'));
    const mesh = new FakeAdapter(() => ({ retry: true, reason: 'down' }));
    const { e, counts } = engine({
      store,
      clock,
      adapters: { webhook: hook, mesh },
      policies: { mesh: { concurrency: 1, breaker: { failures: 1, coolDownMs: 60_000 } } },
    });
    const registry = new Registry();
    registerOutboundMetrics(registry, e);
    e.start();
    for (const id of ['ok', 'bad']) await e.enqueue('webhook:agt_1', { id, body: '{}' });
    for (const id of ['m1', 'm2']) await e.enqueue('mesh:peer', { id, body: '{}' });
    await until(e, 'retry', () => counts.retry === 1 && counts.delivered === 1 && counts.parked === 1);
    const text = await registry.metrics();
    const value = (line: string) => expect(text).toContain(line);
    value('amp_outbound_queue_depth{kind="mesh"} 2');
    value('amp_outbound_queue_depth{kind="webhook"} 0');
    value('amp_outbound_parked{kind="webhook"} 1');
    value('amp_outbound_breakers_open{kind="mesh"} 1');
    value('amp_outbound_in_flight{kind="mesh"} 0');
    value('amp_outbound_attempts_total{kind="webhook"} 2');
    value('amp_outbound_delivered_total{kind="webhook"} 1');
    value('amp_outbound_parked_total{kind="webhook"} 1');
    value('amp_outbound_attempts_total{kind="mesh"} 1');
    value('amp_outbound_failures_total{kind="mesh"} 1');
    expect(text).toMatch(/amp_outbound_attempt_seconds_total\{kind="mesh"\} \d/);
  });

  it('sweepExpired drops expired parked and waiting items, not live ones', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter((item) =>
      item.id === 'p' ? { park: true, reason: 'HTTP 403' } : { retry: true, reason: 'down' },
    );
    const policy = { retry: { baseMs: 3600_000, factor: 1, jitter: 0 } };
    const { e, counts } = engine({ store, clock, adapters: { webhook: adapter }, policies: { webhook: policy } });
    e.start();
    const exp = clock.now() + 1000;
    await e.enqueue('webhook:a', { id: 'p', body: '{}', expiresAt: exp });
    await e.enqueue('webhook:a', { id: 'w', body: '{}', expiresAt: exp });
    await e.enqueue('webhook:a', { id: 'live', body: '{}', expiresAt: exp + 3600_000 });
    await until(e, 'retry', () => counts.parked === 1 && counts.retry === 2);
    expect(await e.sweepExpired()).toBe(0);
    clock.advance(1000);
    expect(await e.sweepExpired()).toBe(2);
    expect(counts.expired).toBe(2);
    expect(store.outboundCount('webhook:a')).toEqual({ pending: 1, parked: 0 });
    expect(store.outboundGet('webhook:a', 'live')).toBeDefined();
    expect(e.kindStats().webhook!.expired).toBe(2);
  });

  it('cancel removes an item before it is attempted', async () => {
    const store = openStore();
    const adapter = new FakeAdapter();
    const { e } = engine({ store, clock: new ManualClock(), adapters: { webhook: adapter } });
    await e.enqueue('webhook:a', { id: 'm1', body: '{}' });
    expect(await e.cancel('webhook:a', 'm1')).toBe(true);
    expect(await e.cancel('webhook:a', 'm1')).toBe(false);
    e.start();
    expect(adapter.calls).toHaveLength(0);
    expect(store.outboundTargets()).toEqual([]);
  });
});

describe('outbound engine across a restart (close, reopen the store, new engine)', () => {
  it('in-flight items stay queued untouched, retry times and parked items are kept', async () => {
    const dir = tempDir('amp-outbound-restart-');
    defer(() => rmSync(dir, { recursive: true, force: true }));
    const clock = new ManualClock();
    const first: Record<string, Adapter> = {
      mesh: new FakeAdapter((_i, signal) => aborted(signal)),
      webhook: new FakeAdapter(() => ({ park: true, reason: 'HTTP 410' })),
      fed: new FakeAdapter(() => ({ retry: true, reason: 'HTTP 502', retryAfterMs: 60_000 })),
    };
    let store = new LmdbStore({ dataDir: dir });
    const one = new OutboundEngine({ store, clock, adapters: first });
    const counts = countEvents(one, EVENTS);
    one.start();
    await one.enqueue('mesh:x', { id: 'm1', body: '{"to":"x"}' });
    await one.enqueue('webhook:y', { id: 'm2', body: '{}' });
    await one.enqueue('fed:z.example', { id: 'm3', body: '{}' });
    await until(one, 'retry', () => counts.retry === 1 && counts.parked === 1);
    expect((first.mesh as FakeAdapter).inFlight).toBe(1);
    await one.close();
    expect(store.outboundGet('mesh:x', 'm1')).toMatchObject({ attempts: 0, state: 'pending' });
    await store.close();

    store = new LmdbStore({ dataDir: dir });
    defer(() => store.close());
    expect(store.outboundTargets().sort()).toEqual(['fed:z.example', 'mesh:x', 'webhook:y']);
    expect(store.outboundGet('webhook:y', 'm2')).toMatchObject({ state: 'parked', attempts: 1, lastError: 'HTTP 410' });
    expect(store.outboundGet('fed:z.example', 'm3')).toMatchObject({ attempts: 1, nextAt: clock.now() + 60_000 });
    const adapter = new FakeAdapter();
    const two = engine({ store, clock, adapters: { mesh: adapter, webhook: adapter, fed: adapter } });
    two.e.start();
    await until(two.e, 'delivered', () => two.counts.delivered === 1);
    expect(adapter.calls).toEqual([expect.objectContaining({ id: 'm1', body: '{"to":"x"}', attempts: 0 })]);
    clock.advance(60_000);
    await until(two.e, 'delivered', () => two.counts.delivered === 2);
    expect(adapter.ids()).toEqual(['m1', 'm3']);
    expect(store.outboundTargets()).toEqual(['webhook:y']);
  });

  it('ordered: only the oldest pending item is attempted, one at a time; a parked one does not block', async () => {
    const store = openStore();
    const clock = new ManualClock();
    // m1 fails twice (retry after 1 s, then 2 s), then goes through; p1 is refused (parked).
    let m1Failures = 0;
    const adapter = new FakeAdapter((item) => {
      if (item.id === 'p1') return { park: true, reason: 'HTTP 404' };
      if (item.id === 'm1' && m1Failures < 2) {
        m1Failures++;
        return { retry: true, reason: 'HTTP 503' };
      }
      return 'delivered';
    });
    const policy = { concurrency: 4, ordered: true, retry: { baseMs: 1000, factor: 2, jitter: 0 } };
    const { e, counts } = engine({ store, clock, adapters: { mesh: adapter }, policies: { mesh: policy } });
    e.start();
    await e.enqueue('mesh:b', { id: 'p1', body: '{}' });
    await until(e, 'parked', () => counts.parked === 1);
    await e.enqueue('mesh:b', { id: 'm1', body: '{}' });
    await until(e, 'retry', () => counts.retry === 1);
    // m2 and m3 are due now, m1 only in 1 s: nothing overtakes it.
    await e.enqueue('mesh:b', { id: 'm2', body: '{}' });
    await e.enqueue('mesh:b', { id: 'm3', body: '{}' });
    expect(adapter.ids()).toEqual(['p1', 'm1']);
    clock.advance(999);
    expect(adapter.ids()).toEqual(['p1', 'm1']);
    clock.advance(1);
    await until(e, 'retry', () => counts.retry === 2);
    expect(adapter.ids()).toEqual(['p1', 'm1', 'm1']);
    clock.advance(2000);
    await until(e, 'delivered', () => counts.delivered === 3, '3 deliveries');
    expect(adapter.ids()).toEqual(['p1', 'm1', 'm1', 'm1', 'm2', 'm3']);
    expect(adapter.maxInFlight).toBe(1);
    expect(store.outboundCount('mesh:b')).toEqual({ pending: 0, parked: 1 });
  });
  it('ordered with groups: a sender waiting for its retry holds back only its own later items', async () => {
    const store = openStore();
    const clock = new ManualClock();
    let a1Failures = 0;
    const adapter = new FakeAdapter((item) => {
      if (item.id === 'a1' && a1Failures < 1) {
        a1Failures++;
        return { retry: true, reason: 'HTTP 503' };
      }
      return 'delivered';
    });
    const policy = { concurrency: 4, ordered: true, retry: { baseMs: 1000, factor: 2, jitter: 0 } };
    const { e, counts } = engine({ store, clock, adapters: { mesh: adapter }, policies: { mesh: policy } });
    e.start();
    await e.enqueue('mesh:b', { id: 'a1', body: '{}', group: 'alice' });
    await until(e, 'retry', () => counts.retry === 1);
    await e.enqueue('mesh:b', { id: 'a2', body: '{}', group: 'alice' });
    await e.enqueue('mesh:b', { id: 'b1', body: '{}', group: 'bob' });
    await e.enqueue('mesh:b', { id: 'b2', body: '{}', group: 'bob' });
    await until(e, 'delivered', () => counts.delivered === 2, "bob's two");
    // bob's went meanwhile, in order; alice's a2 still waits behind a1's retry.
    expect(adapter.ids()).toEqual(['a1', 'b1', 'b2']);
    clock.advance(1000);
    await until(e, 'delivered', () => counts.delivered === 4, "alice's two");
    expect(adapter.ids()).toEqual(['a1', 'b1', 'b2', 'a1', 'a2']);
    expect(store.outboundCount('mesh:b')).toEqual({ pending: 0, parked: 0 });
  });

  it('ordered groups survive a restart (the group is stored with the item)', async () => {
    const dir = tempDir();
    defer(() => rmSync(dir, { recursive: true, force: true }));
    let store = new LmdbStore({ dataDir: dir });
    await store.outboundEnqueue('mesh:b', { id: 'a1', body: '{}', createdAt: 1, group: 'alice', nextAt: 10_000 });
    await store.outboundEnqueue('mesh:b', { id: 'a2', body: '{}', createdAt: 2, group: 'alice' });
    await store.outboundEnqueue('mesh:b', { id: 'b1', body: '{}', createdAt: 3, group: 'bob' });
    await store.close();
    store = new LmdbStore({ dataDir: dir });
    defer(() => store.close());
    const due = store.outboundDue('mesh:b', 5, 10, undefined, true);
    expect(due.items.map((i) => i.id)).toEqual(['b1']);
    expect(due.nextAt).toBe(10_000);
    expect(store.outboundDue('mesh:b', 5, 10).items.map((i) => i.id)).toEqual(['a2', 'b1']);
  });
});
