// The NATS harness the cluster tests stand on: three nats-server processes with JetStream form one
// cluster (a meta leader, three peers), a server killed with -9 is gone (its PID ends, its client
// port refuses) and comes back on the same ports and store; close() ends every process it started.

import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { type NatsCluster, startNats } from '../helpers/nats.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

function portOpen(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace('nats://', 'http://'));
  return new Promise((resolve) => {
    const s = connect(Number(port), hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startNats', () => {
  let nats: NatsCluster;
  setupOrFailEveryTest(async () => {
    nats = await startNats({ cluster: 3 });
  });
  afterAll(async () => nats?.close());

  it('starts a 3-server JetStream cluster on loopback', async () => {
    expect(nats.urls).toHaveLength(3);
    for (const u of nats.urls) expect(u).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    const jsz = (await (await fetch(`${nats.servers[0].monitor}/jsz`)).json()) as any;
    expect(jsz.meta_cluster.cluster_size).toBe(3);
    expect(jsz.meta_cluster.leader).toBeTruthy();
    const routez = (await (await fetch(`${nats.servers[0].monitor}/routez`)).json()) as any;
    expect(routez.num_routes).toBeGreaterThanOrEqual(2);
  });

  it('kill9 ends one server; restart brings it back on the same port', async () => {
    const s = nats.servers[1];
    const pid = s.pid!;
    expect(alive(pid)).toBe(true);
    await s.kill9();
    expect(s.pid).toBeUndefined();
    expect(alive(pid)).toBe(false);
    expect(await portOpen(s.url)).toBe(false);
    await s.restart();
    expect(s.pid).not.toBe(pid);
    expect(await portOpen(s.url)).toBe(true);
  });

  it('close() ends every server it started', async () => {
    const pids = nats.servers.map((s) => s.pid!);
    await nats.close();
    for (const p of pids) expect(alive(p)).toBe(false);
  });
});

describe('startNats single', () => {
  it('starts one server with JetStream', async () => {
    const one = await startNats({ cluster: 1 });
    try {
      expect(one.urls).toHaveLength(1);
      const h = await fetch(`${one.servers[0].monitor}/healthz?js-enabled-only=true`);
      expect(h.status).toBe(200);
    } finally {
      await one.close();
    }
  });
});
