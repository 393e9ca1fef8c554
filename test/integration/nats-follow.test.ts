// The follower under every NATS mirror (src/store/nats/follow.ts) against a real nats-server: its
// ordered consumer deleted from under it, or the server restarted (same store), it recreates the
// consumer after the last seq it handed over: every message once, in order, none lost. And a
// publish ridden through the server's absence (retry.ts) is stored once when the server is back
// within the bound, with its Nats-Msg-Id deduplicating the retries.

import { RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import { type NatsDoor, openNats } from '../../src/store/nats/door.js';
import { Follower } from '../../src/store/nats/follow.js';
import { publishRetried } from '../../src/store/nats/retry.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { until } from '../helpers/ws.js';

let nats: NatsCluster;
let door: NatsDoor;
const followers: Follower[] = [];
const prefix = uniquePrefix('follow');

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
  door = await openNats({ servers: nats.urls, name: 'follow-test', replicas: 1, prefix, timeoutMs: 2000 });
});
afterAll(async () => {
  for (const f of followers) f.stop();
  await door?.close();
  await nats?.close();
});

async function stream(name: string): Promise<void> {
  await door.jsm.streams.add({
    name,
    subjects: [`${name}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: 1,
  });
}

function followInto(name: string, seen: number[], warnings: string[]): Follower {
  const f = new Follower(door.js, door.nc, {
    stream: name,
    onMessage: (m) => seen.push(Number(m.string())),
    onWarn: (what, why) => warnings.push(`${what}: ${String(why)}`),
  });
  followers.push(f);
  return f;
}

/** `until` polls back to back: a probe that does no I/O must yield, or the messages never come in. */
const seenAtLeast = (seen: number[], n: number) => async () => {
  await new Promise((r) => setTimeout(r, 20));
  return seen.length >= n;
};

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('a follower recreates its consumer', () => {
  it('deleted from under it: every message once, in order, after the recreation too', async () => {
    const name = `${prefix}_DEL`;
    await stream(name);
    for (let i = 1; i <= 5; i++) await door.js.publish(`${name}.x`, String(i));
    const seen: number[] = [];
    const warnings: string[] = [];
    const f = followInto(name, seen, warnings);
    await f.ready;
    expect(seen).toEqual(range(1, 5));
    // Delete every consumer of the stream (the follower's ordered consumer among them).
    for await (const ci of door.jsm.consumers.list(name)) await door.jsm.consumers.delete(name, ci.name);
    for (let i = 6; i <= 10; i++) await door.js.publish(`${name}.x`, String(i));
    expect(await until(seenAtLeast(seen, 10), 10_000), `seen ${seen}; ${warnings.join(' | ')}`).toBe(true);
    expect(seen).toEqual(range(1, 10));
    expect(f.lastSeq).toBe(10);
  }, 30_000);

  it('the server restarted (same store): the follower resumes after its last seq; a publish meanwhile rides it out', async () => {
    const name = `${prefix}_RS`;
    await stream(name);
    for (let i = 1; i <= 3; i++) await door.js.publish(`${name}.x`, String(i));
    const seen: number[] = [];
    const warnings: string[] = [];
    const f = followInto(name, seen, warnings);
    await f.ready;
    const server = nats.servers[0]!;
    await server.kill9();
    // Published while the server is away (the retry waits for it), with one Nats-Msg-Id.
    const acked = publishRetried(door, `${name}.x`, '4', { msgID: `${name}-4` });
    await server.restart();
    const ack = await acked;
    expect(ack.seq).toBe(4);
    await door.js.publish(`${name}.x`, '5');
    expect(await until(seenAtLeast(seen, 5), 15_000), `seen ${seen}`).toBe(true);
    expect(seen).toEqual(range(1, 5));
    const info = await door.jsm.streams.info(name);
    expect(info.state.messages).toBe(5);
    expect(warnings.length).toBeGreaterThan(0);
  }, 40_000);
});
