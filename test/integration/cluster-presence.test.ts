// Cluster mode: presence entries live AMP_NATS_PRESENCE_TTL seconds (3 here) and each node's
// heartbeat (every third of it) keeps its own alive. An agent whose socket is on node 2 stays
// online on node 1 past several TTLs; node 2 killed with -9 (nothing deleted), node 1 shows the
// agent offline once the TTL ran out; a node stopped cleanly deletes its entries at once.

import { afterAll, describe, expect, it } from 'vitest';
import { type RelayCluster, startRelays } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, register, type Registered } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

const TTL_MS = 3000;
/** The TTL, plus what a loaded machine adds (watch latency, a late heartbeat tick). */
const EXPIRED_WITHIN_MS = TTL_MS + 4000;

let nats: NatsCluster;
let relays: RelayCluster;
const node = (i: number) => relays.nodes[i]!;

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
  relays = await startRelays(nats, {
    nodes: 2,
    prefix: uniquePrefix('presence'),
    // The probes below ask often; rate limits are not what this file tests.
    env: { AMP_NATS_PRESENCE_TTL: String(TTL_MS / 1000), AMP_RATE_LIMITS: 'off' },
  });
});
afterAll(async () => {
  await closeAllWs();
  await relays?.close();
  await nats?.close();
});

const online = async (n: number, who: Registered, asker: Registered): Promise<boolean> => {
  const r = await call('GET', `${node(n).api}/agents/resolve/${who.address}`, { key: asker.api_key });
  expect(r.status).toBe(200);
  return r.body.online;
};

const agentsOnline = async (n: number): Promise<number> =>
  (await call('GET', `${node(n).api}/health`)).body.agents_online;

const PROBE_EVERY_MS = 50;
const paced = (probe: () => Promise<boolean>) => async () => {
  if (await probe()) return true;
  await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
  return false;
};

/** Resolves with the ms it took `probe` to hold; fails with `what` after `ms`. */
async function within(what: string, ms: number, probe: () => Promise<boolean>): Promise<number> {
  const start = performance.now();
  if (!(await until(paced(probe), ms))) throw new Error(`not within ${ms} ms: ${what}`);
  return performance.now() - start;
}

/** Asks `probe` again and again for `ms`: it must hold every time. */
async function holdsFor(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (!(await probe())) throw new Error(`stopped holding: ${what}`);
    await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
  }
}

/** Two agents registered on node 1, known to node 2. */
async function pair(tag: string): Promise<[Registered, Registered]> {
  const asker = await register(node(0).api, `asker${tag}`, 'acme');
  const roamer = await register(node(0).api, `roamer${tag}`, 'acme');
  await within('node 2 knows the agent', 3000, async () => {
    return (await call('GET', `${node(1).api}/messages/pending`, { key: roamer.api_key })).status === 200;
  });
  return [asker, roamer];
}

describe('presence entries expire without heartbeats', () => {
  it('the heartbeat keeps a remote agent online past several TTLs; kill -9 of its node: offline after the TTL', async () => {
    const [asker, roamer] = await pair('1');
    const before = await agentsOnline(0);
    await connectWs(node(1).wsUrl, roamer.api_key);
    await within('node 1 shows the agent online', 3000, () => online(0, roamer, asker));
    expect(await agentsOnline(0)).toBe(before + 1);
    // Two and a half TTLs: only the heartbeats keep the entry (the bucket's max age is the TTL).
    await holdsFor('node 1 shows the agent online', TTL_MS * 2.5, () => online(0, roamer, asker));

    await node(1).kill9();
    const took = await within('node 1 shows the agent offline', EXPIRED_WITHIN_MS, async () => {
      return !(await online(0, roamer, asker));
    });
    // Nothing deleted the entry: it went by age (not earlier than the last heartbeat allows).
    expect(took).toBeGreaterThan(TTL_MS / 3);
    expect(await agentsOnline(0)).toBe(before);
  });

  it('a node stopped cleanly deletes its entries: offline elsewhere at once, well before the TTL', async () => {
    await node(1).restart(); // killed above
    const [asker, roamer] = await pair('2');
    await connectWs(node(1).wsUrl, roamer.api_key);
    await within('node 1 shows the agent online', 3000, () => online(0, roamer, asker));
    await node(1).stop();
    await within('node 1 shows the agent offline', TTL_MS / 2, async () => !(await online(0, roamer, asker)));
  });
});
