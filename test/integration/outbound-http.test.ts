// The outbound engine against a real HTTP receiver (node:http on 127.0.0.1) through a tiny test
// adapter (POST the body; 2xx delivered, 4xx parked, else retried), on a real LMDB store: delivery,
// 500 then 200, 400 parked, the breaker, the concurrency limit seen from the receiver, and a kill -9
// of a process holding a queued item (a child process, `node --import tsx`). Time moves through a
// hand-moved clock; every wait is on an event.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutboundEngine, type PolicyOverride, WEBHOOK_POLICY } from '../../src/outbound/index.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { countEvents, httpAdapter, Receiver, until } from '../helpers/outbound.js';
import { tempDir } from '../helpers/server.js';
import { afterEachCleanup, testStores } from '../helpers/store.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CHILD = 'test/helpers/outbound-child.ts';
const defer = afterEachCleanup();
const openStore = testStores('amp-outbound-http-', defer);
const EVENTS = ['delivered', 'retry', 'parked', 'breaker', 'storeError'];

async function receiver(statuses: number[] = []): Promise<Receiver> {
  const r = new Receiver(statuses);
  await r.listen();
  defer(() => r.close());
  return r;
}

function engine(store: LmdbStore, clock: ManualClock, url: string, policy: PolicyOverride = WEBHOOK_POLICY) {
  const e = new OutboundEngine({
    store,
    clock,
    random: () => 0,
    adapters: { webhook: httpAdapter(() => url) },
    policies: { webhook: policy },
  });
  const counts = countEvents(e, EVENTS);
  defer(() => e.close());
  e.start();
  return { e, counts };
}

describe('outbound engine with a real HTTP receiver', () => {
  it('a 2xx delivers the body once and empties the queue', async () => {
    const r = await receiver();
    const store = openStore();
    const { e, counts } = engine(store, new ManualClock(), r.url);
    await e.enqueue('webhook:agt_1', { id: 'msg_1', body: '{"envelope":{"id":"msg_1"}}' });
    await until(e, 'delivered', () => counts.delivered === 1);
    expect(r.received).toEqual([{ id: 'msg_1', attempt: '1', body: '{"envelope":{"id":"msg_1"}}', status: 200 }]);
    expect(store.outboundTargets()).toEqual([]);
  });

  it('500 then 200: delivered by the retry 30 s later', async () => {
    const r = await receiver([500]);
    const store = openStore();
    const clock = new ManualClock();
    const { e, counts } = engine(store, clock, r.url);
    await e.enqueue('webhook:agt_1', { id: 'msg_1', body: '{}' });
    await until(e, 'retry', () => counts.retry === 1);
    expect(store.outboundGet('webhook:agt_1', 'msg_1')).toMatchObject({ attempts: 1, lastError: 'HTTP 500' });
    clock.advance(29_999);
    expect(clock.nextTimerAt()).toBe(clock.now() + 1);
    clock.advance(1);
    await until(e, 'delivered', () => counts.delivered === 1);
    expect(r.received.map((x) => [x.attempt, x.status])).toEqual([
      ['1', 500],
      ['2', 200],
    ]);
    expect(store.outboundTargets()).toEqual([]);
  });

  it('400: parked, kept, never retried', async () => {
    const r = await receiver([400]);
    const store = openStore();
    const clock = new ManualClock();
    const { e, counts } = engine(store, clock, r.url);
    await e.enqueue('webhook:agt_1', { id: 'msg_1', body: '{}' });
    await until(e, 'parked', () => counts.parked === 1);
    clock.advance(7 * 24 * 3600_000);
    expect(clock.nextTimerAt()).toBeNull();
    expect(r.received).toHaveLength(1);
    expect(store.outboundGet('webhook:agt_1', 'msg_1')).toMatchObject({ state: 'parked', lastError: 'HTTP 400' });
  });

  it('the breaker opens on consecutive 503s, pauses the target, and closes on a good probe', async () => {
    const r = await receiver([503, 503]);
    const store = openStore();
    const clock = new ManualClock();
    const policy = { concurrency: 1, breaker: { failures: 2, coolDownMs: 10_000 }, retry: { baseMs: 1000, factor: 1 } };
    const { e, counts } = engine(store, clock, r.url, policy);
    const states: string[] = [];
    e.on('breaker', (_t, s) => states.push(s));
    for (const id of ['a', 'b', 'c']) await e.enqueue('webhook:agt_1', { id, body: '{}' });
    await until(e, 'retry', () => counts.retry === 2 && states.includes('open'));
    expect(r.received).toHaveLength(2);
    // An attempt starts synchronously inside advance(): none may while the breaker is open.
    clock.advance(9_999);
    expect(e.targetStat('webhook:agt_1')).toMatchObject({ inFlight: 0, breaker: 'open', pending: 3 });
    clock.advance(1);
    expect(e.targetStat('webhook:agt_1')).toMatchObject({ inFlight: 1, breaker: 'half-open' });
    await until(e, 'delivered', () => counts.delivered === 3);
    expect(states).toEqual(['open', 'half-open', 'closed']);
    expect(r.received.map((x) => x.status)).toEqual([503, 503, 200, 200, 200]);
  });

  it('never has more requests open at the receiver than the concurrency limit', async () => {
    const r = await receiver();
    r.hold = true;
    const store = openStore();
    const { e, counts } = engine(store, new ManualClock(), r.url, { concurrency: 3 });
    for (let i = 0; i < 7; i++) await e.enqueue('webhook:agt_1', { id: `m${i}`, body: '{}' });
    for (let round = 0; round < 5 && counts.delivered < 7; round++) {
      const expected = Math.min(3, 7 - counts.delivered);
      await until(r, 'request', () => r.open >= expected, `${expected} requests open`);
      const before = counts.delivered;
      expect(r.release()).toBe(expected);
      await until(e, 'delivered', () => counts.delivered === before + expected);
    }
    expect(counts.delivered).toBe(7);
    expect(r.maxOpen).toBe(3);
  });
});

describe('outbound queue across kill -9', () => {
  it('an item queued (and tried once) by a killed process is delivered exactly once after the restart', async () => {
    const dir = tempDir('amp-outbound-kill-');
    defer(() => rmSync(dir, { recursive: true, force: true }));
    // The receiver is down while the first process runs: its port is closed.
    const down = new Receiver();
    const downUrl = await down.listen();
    await down.close();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, 'webhook:agt_1', 'msg_k', downUrl], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    defer(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await until(child.stdout, 'data', () => out.includes('retry msg_k'), `child output: ${out} ${err}`, 20_000);
    expect(out).toContain('queued msg_k');
    child.kill('SIGKILL');
    const [, signal] = await once(child, 'exit');
    expect(signal).toBe('SIGKILL');

    const r = await receiver();
    let store = new LmdbStore({ dataDir: dir });
    expect(store.outboundGet('webhook:agt_1', 'msg_k')).toMatchObject({ state: 'pending', attempts: 1 });
    const clock = new ManualClock(Date.now());
    const { e, counts } = engine(store, clock, r.url);
    // The 30 s retry delay survived the restart (an attempt would start synchronously in start()).
    expect(e.targetStat('webhook:agt_1')).toMatchObject({ inFlight: 0, pending: 1 });
    clock.advance(30_000);
    expect(e.targetStat('webhook:agt_1').inFlight).toBe(1);
    await until(e, 'delivered', () => counts.delivered === 1);
    await e.close();
    await store.close();
    store = new LmdbStore({ dataDir: dir });
    defer(() => store.close());
    expect(store.outboundTargets()).toEqual([]);
    expect(r.received.map((x) => [x.id, x.attempt])).toEqual([['msg_k', '2']]);
    expect(JSON.parse(r.received[0]!.body)).toEqual({ envelope: { id: 'msg_k' }, payload: { message: 'hi' } });
  });
});
