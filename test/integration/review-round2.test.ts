// Second review of the mesh/federation fixes and of the per-sender outbound order: reproductions of
// defects found on the integration branch (each `DEFECT: …` fails until fixed). The engine runs on a
// real LMDB store with a hand-moved clock (as in outbound-engine.test.ts); the providers are real
// `amp-relay serve` child processes on loopback (as in federation.test.ts).

import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Adapter, OutboundEngine, type OutboundEngineOptions } from '../../src/outbound/index.js';
import { FEDERATION_POLICY } from '../../src/relay/federation/adapter.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { countEvents, FakeAdapter, until } from '../helpers/outbound.js';
import { type Provider, start as startProvider, stopAll, twoProviders } from '../helpers/federation.js';
import { freePort } from '../helpers/ports.js';
import {
  call,
  type ChildServer,
  newKeypair,
  ROOT,
  type Registered,
  register,
  routeOk,
  signMessage,
  spawnServer,
  tempDir,
} from '../helpers/server.js';
import { connectWs, until as poll } from '../helpers/ws.js';
import { afterEachCleanup, testStores } from '../helpers/store.js';

const defer = afterEachCleanup();
const openStore = testStores('amp-review2-', defer);
const EVENTS = ['delivered', 'retry', 'parked', 'deferred', 'expired'];

function engine(opts: Omit<OutboundEngineOptions, 'random'>) {
  const e = new OutboundEngine({ random: () => 0, ...opts });
  const counts = countEvents(e, EVENTS);
  defer(() => e.close());
  return { e, counts };
}

describe('per-sender order (federation policy)', () => {
  it("regression: one message deferred for its recipient (recipient_suspended) holds back the sender's messages to every other recipient at that provider", async () => {
    const store = openStore();
    const clock = new ManualClock();
    // What federationAdapter answers for B's `403 recipient_suspended` (federation-adapter.test.ts):
    // a defer of that message, up to 5 min at a time, for as long as the recipient stays suspended.
    const adapter = new FakeAdapter((item) => {
      const to = (JSON.parse(item.body) as { envelope: { to: string } }).envelope.to;
      if (to === 'bob@acme.b.example') {
        return { defer: true, reason: '403 recipient_suspended', until: clock.now() + 5 * 60_000 };
      }
      return 'delivered';
    });
    const { e, counts } = engine({
      store,
      clock,
      adapters: { federation: adapter as Adapter },
      policies: { federation: FEDERATION_POLICY },
    });
    e.start();
    // route.ts groups by sender and recipient (`<sender id> <to>`): what it would enqueue.
    const msg = (id: string, to: string) => ({
      id,
      body: JSON.stringify({ envelope: { id, to } }),
      group: `alice ${to}`,
    });
    await e.enqueue('federation:b.example', msg('m1', 'bob@acme.b.example'));
    await until(e, 'deferred', () => counts.deferred === 1, 'm1 deferred');
    // alice now writes to carol, another (active) agent of the same provider.
    await e.enqueue('federation:b.example', msg('m2', 'carol@acme.b.example'));
    // Ten minutes pass (bob still suspended, m1 deferred again each time): carol's message should
    // have gone at once, it has nothing to do with bob's suspension.
    for (let i = 0; i < 2; i++) {
      clock.advance(5 * 60_000);
      await until(e, 'deferred', () => counts.deferred === 2 + i, `m1 deferred again (${i + 1})`);
    }
    expect(
      adapter.ids().filter((id) => id === 'm2'),
      `attempts so far: ${adapter.ids()}`,
    ).toEqual(['m2']);
    expect(counts.delivered).toBe(1);
  });
});

describe('per-sender order: an expired head', () => {
  it("regression: the sweep drops a group's expired head but its next item waits for the head's old timer", async () => {
    const store = openStore();
    const clock = new ManualClock();
    const adapter = new FakeAdapter((item) =>
      item.id === 'm1'
        ? { defer: true, reason: '403 recipient_suspended', until: clock.now() + 5 * 60_000 }
        : 'delivered',
    );
    const { e, counts } = engine({
      store,
      clock,
      adapters: { federation: adapter as Adapter },
      policies: { federation: FEDERATION_POLICY },
    });
    e.start();
    // m1 may live 10 s (its envelope's expires_at); it is deferred for 5 min.
    await e.enqueue('federation:b.example', { id: 'm1', body: '{}', group: 'alice', expiresAt: clock.now() + 10_000 });
    await until(e, 'deferred', () => counts.deferred === 1, 'm1 deferred');
    await e.enqueue('federation:b.example', { id: 'm2', body: '{}', group: 'alice' });
    clock.advance(11_000);
    // The store's periodic sweep (server.ts startTtlSweeper) drops m1: nothing of alice's is ahead of m2.
    expect(await e.sweepExpired()).toBe(1);
    const went = await until(e, 'delivered', () => counts.delivered === 1, 'm2 delivered', 2000).then(
      () => 'delivered',
      (err: Error) => `${err.message}; attempts: ${adapter.ids().join(',')}`,
    );
    expect(went).toBe('delivered');
  });
});

describe('federation inbound, open mode, public profile', () => {
  let server: ChildServer | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    server = undefined;
    dir = undefined;
  });

  it('regression: forged requests naming ever new provider domains each start a discovery, bounded by no limit', async () => {
    dir = tempDir('amp-review2-open-');
    // Federation is on with a pins file (none pinned: open mode discovers every provider).
    const pins = join(dir, 'pins.json');
    writeFileSync(pins, '{}');
    server = await spawnServer(dir, [
      ...['--provider-domain', 'b.example', '--federation-pins', pins, '--federation-mode', 'open'],
      ...['--rate-limit-profile', 'public'],
      ...['--rate-limit-overrides', 'federation_failures=3/min,federation_total=3/min'],
    ]);
    const url = `${server.url}/v1/federation/deliver`;
    const statuses: number[] = [];
    const messages: string[] = [];
    for (let i = 0; i < 8; i++) {
      // Anyone can send this: a made-up provider name and 64 random bytes as its "signature".
      const domain = `p${i}-${randomBytes(4).toString('hex')}.invalid`;
      const ts = String(Math.floor(Date.now() / 1000));
      const r = await call('POST', url, {
        raw: JSON.stringify({ envelope: {}, payload: {} }),
        headers: {
          'Content-Type': 'application/json',
          'X-AMP-Provider': domain,
          'X-AMP-Timestamp': ts,
          'X-AMP-Signature': randomBytes(64).toString('base64'),
        },
      });
      statuses.push(r.status);
      messages.push(String(r.body?.message));
    }
    // The first 3 start a discovery that fails; each failure counts in the address's failures bucket
    // (3/min), so the 4th on is 429 before any discovery starts.
    expect(
      messages.slice(0, 3).every((m) => /discover|fetch/i.test(m)),
      messages.join('\n'),
    ).toBe(true);
    expect(statuses.slice(3), messages.join('\n')).toEqual([429, 429, 429, 429, 429]);
  }, 60_000);
});

describe('mesh: a queued message whose recipient is suspended at the peer', () => {
  const DOMAIN_SECRET = 'mesh-secret-of-at-least-16-chars';
  const hosts = { a: { id: 'host-a', port: 0, dir: '', file: '' }, b: { id: 'host-b', port: 0, dir: '', file: '' } };
  const children: ChildServer[] = [];
  const api = (h: { port: number }) => `http://127.0.0.1:${h.port}/api/v1`;
  const startHost = async (h: typeof hosts.a, tenant: string) => {
    const child = await spawnServer(h.dir, [
      '--port',
      String(h.port),
      '--mesh-config',
      h.file,
      '--default-tenant',
      tenant,
    ]);
    children.push(child);
    return child;
  };
  const admin = (h: typeof hosts.b, ...args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [join(ROOT, 'bin', 'amp-relay.js'), 'admin', ...args, '--data-dir', h.dir, '--port', String(h.port)],
        { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );

  /** Fresh ports, data dirs and mesh files for A and B, naming each other with one secret. */
  const writeConfigs = async () => {
    for (const h of Object.values(hosts)) {
      h.port = await freePort();
      h.dir = tempDir(`amp-review2-${h.id}-`);
      h.file = join(h.dir, 'mesh.json');
    }
    for (const [h, peer] of [
      [hosts.a, hosts.b],
      [hosts.b, hosts.a],
    ] as const) {
      const hostsList = [{ id: peer.id, url: `http://127.0.0.1:${peer.port}`, secret: DOMAIN_SECRET }];
      writeFileSync(h.file, JSON.stringify({ mesh: { self_id: h.id, hosts: hostsList } }));
    }
  };
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop('SIGKILL');
    for (const h of Object.values(hosts)) if (h.dir) rmSync(h.dir, { recursive: true, force: true });
  });

  it('regression: is parked for good on 403 recipient_suspended; lifting the suspension never delivers it', async () => {
    await writeConfigs();
    await startHost(hosts.a, 'alpha');
    const b1 = await startHost(hosts.b, 'beta');
    const alice = await register(api(hosts.a), 'alice', 'alpha');
    const bob = await register(api(hosts.b), 'bob', 'beta');
    // An operator suspends bob on B for an hour; B then goes down for a moment.
    await admin(hosts.b, 'agents', 'suspend', bob.agent_id, '--tenant', 'beta', '--hours', '1');
    await b1.stop();
    const r = await routeOk(api(hosts.a), alice, {
      to: 'bob@host-b',
      subject: 's',
      payload: { type: 'notification', message: 'hi' },
    });
    expect(r).toMatchObject({ status: 'queued', method: 'relay' });
    await startHost(hosts.b, 'beta');
    // A's retry reaches B, which answers 403 recipient_suspended: A holds it back (pending, not parked).
    const held = await poll(async () => {
      const p = await call('GET', `${api(hosts.a)}/peers`, { key: alice.api_key });
      const peer = p.body?.mesh?.find((x: any) => x.id === 'host-b');
      return peer?.pending === 1 && peer?.parked === 0 && /recipient_suspended/.test(peer?.last_error ?? '');
    }, 30_000);
    expect(held).toBe(true);
    // The suspension is lifted: A's next try (about as long again as it has waited) delivers it.
    await admin(hosts.b, 'agents', 'unsuspend', bob.agent_id, '--tenant', 'beta');
    const ws = await connectWs(`ws://127.0.0.1:${hosts.b.port}/v1/ws`, bob.api_key);
    const frame = await ws
      .next((f: any) => f?.type === 'message.new' && f.data?.id === r.id, 20_000)
      .catch((e: Error) => e.message);
    await ws.close();
    expect(typeof frame === 'object' ? frame.data.id : frame).toBe(r.id);
  }, 120_000);

  it('a recipient suspended at the peer on the first attempt: the sender is told 403, nothing stays queued', async () => {
    await writeConfigs();
    await Promise.all([startHost(hosts.a, 'alpha'), startHost(hosts.b, 'beta')]);
    const alice = await register(api(hosts.a), 'alice', 'alpha');
    const bob = await register(api(hosts.b), 'bob', 'beta');
    await admin(hosts.b, 'agents', 'suspend', bob.agent_id, '--tenant', 'beta', '--hours', '1');
    const body = { to: 'bob@host-b', subject: 's', payload: { type: 'notification', message: 'hi' } };
    const r = await call('POST', `${api(hosts.a)}/route`, { key: alice.api_key, json: body });
    expect([r.status, r.body.error, r.body.details?.remote_host]).toEqual([403, 'recipient_suspended', 'host-b']);
    const peers = await call('GET', `${api(hosts.a)}/peers`, { key: alice.api_key });
    const peer = peers.body.mesh.find((x: any) => x.id === 'host-b');
    expect([peer.pending, peer.parked]).toEqual([0, 0]);
  }, 60_000);
});

describe('federation: per-sender order between two real providers', () => {
  let pa: Provider | undefined;
  let pb: Provider | undefined;
  afterEach(async () => {
    if (pa && pb) await stopAll(pa, pb);
    pa = pb = undefined;
  });

  it("regression: alice's message to a suspended agent at b.example holds back her message to carol there", async () => {
    ({ a: pa, b: pb } = await twoProviders());
    await Promise.all([startProvider(pa), startProvider(pb)]);
    const alice = await register(pa.api, 'alice', 'acme');
    const bob = await register(pb.api, 'bob', 'acme');
    const carol = await register(pb.api, 'carol', 'acme');
    const b = pb;
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        [join(ROOT, 'bin', 'amp-relay.js'), 'admin', 'agents', 'suspend', bob.agent_id, '--tenant', 'acme'].concat([
          '--hours',
          '1',
          '--data-dir',
          b.dir,
          '--port',
          String(b.port),
          '--provider-domain',
          b.domain,
        ]),
        { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
        (err, _out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
      ),
    );
    const send = (to: Registered, message: string) => {
      const payload = { type: 'notification', message };
      const signature = signMessage(alice.keys.privateKey, {
        from: alice.address,
        to: to.address,
        subject: 's',
        payload,
      });
      return routeOk(pa!.api, alice, { to: to.address, subject: 's', payload, signature });
    };
    const m1 = await send(bob, 'to bob (suspended at B: B answers 403 recipient_suspended, A defers it)');
    expect(m1).toMatchObject({ status: 'queued' });
    const carolWs = await connectWs(b.ws, carol.api_key);
    const m2 = await send(carol, 'to carol (active)');
    // carol's message has nothing to do with bob's suspension; B takes it at once when A sends it.
    const got = await carolWs
      .next((f: any) => f?.type === 'message.new' && f.data?.id === m2.id, 15_000)
      .then((f: any) => f.data.id as string)
      .catch((e: Error) => e.message);
    await carolWs.close();
    expect(got).toBe(m2.id);
  }, 90_000);
});

describe('mesh: who a peer may speak for', () => {
  const SECRET = 'mesh-secret-of-at-least-16-chars';
  const hb = { id: 'host-b', port: 0, dir: '', file: '' };
  const hc = { id: 'host-c', port: 0, dir: '', file: '' };
  const kids: ChildServer[] = [];
  afterEach(async () => {
    for (const c of kids.splice(0)) await c.stop('SIGKILL');
    for (const h of [hb, hc]) if (h.dir) rmSync(h.dir, { recursive: true, force: true });
  });

  it("regression: host-a may send as an org agent that lives on host-c (with a key of its choosing: 'verified')", async () => {
    for (const h of [hb, hc]) {
      h.port = await freePort();
      h.dir = tempDir(`amp-review2-${h.id}-`);
      h.file = join(h.dir, 'mesh.json');
    }
    const peer = (id: string, port: number) => ({ id, url: `http://127.0.0.1:${port}`, secret: SECRET });
    // B peers with A (not running: the test holds the A-B secret, as host-a does) and C.
    const bHosts = [peer('host-a', await freePort()), peer('host-c', hc.port)];
    writeFileSync(hb.file, JSON.stringify({ mesh: { self_id: 'host-b', hosts: bHosts } }));
    writeFileSync(hc.file, JSON.stringify({ mesh: { self_id: 'host-c', hosts: [peer('host-b', hb.port)] } }));
    for (const [h, tenant] of [
      [hb, 'beta'],
      [hc, 'gamma'],
    ] as const) {
      kids.push(
        await spawnServer(h.dir, ['--port', String(h.port), '--mesh-config', h.file, '--default-tenant', tenant]),
      );
    }
    const api = (h: { port: number }) => `http://127.0.0.1:${h.port}/api/v1`;
    const bob = await register(api(hb), 'bob', 'beta');
    const carol = await register(api(hc), 'carol', 'acme'); // carol@acme.aimaestro.local lives on host-c
    // B itself finds carol at host-c (its peers' resolve): bob's message to her goes there.
    const toCarol = await routeOk(api(hb), bob, {
      to: carol.address,
      subject: 'hi',
      payload: { type: 'notification', message: 'x' },
    });
    expect(toCarol).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-c' });
    // host-a forwards a message "from carol", signed with a key host-a made up and names for her.
    const fake = newKeypair();
    const payload = { type: 'notification', message: 'wire the money' };
    const fields = { from: carol.address, to: bob.address, subject: 'urgent', priority: 'normal' };
    const id = `msg_${Date.now()}_${randomBytes(8).toString('hex')}`;
    const raw = JSON.stringify({
      ...fields,
      payload,
      id,
      timestamp: new Date().toISOString(),
      signature: signMessage(fake.privateKey, { ...fields, payload }),
      sender_public_key: fake.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex'),
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const mac = createHmac('sha256', SECRET).update(`${ts}.${raw}`).digest('hex');
    const headers = {
      'Content-Type': 'application/json',
      'X-AMP-Mesh-Host': 'host-a',
      'X-AMP-Timestamp': ts,
      'X-AMP-Mesh-Auth': `sha256=${mac}`,
    };
    const r = await call('POST', `http://127.0.0.1:${hb.port}/v1/route`, { raw, headers });
    const inbox = await call('GET', `${api(hb)}/messages/pending?limit=100`, { key: bob.api_key });
    const forged = inbox.body.messages.find((m: any) => m.id === id);
    // Expected: refused (403 forbidden: carol is host-c's agent, not host-a's), nothing in bob's inbox.
    expect({
      status: r.status,
      inInbox: forged?.envelope?.from,
      verified: forged?.security?.signature_verified,
    }).toEqual({
      status: 403,
      inInbox: undefined,
      verified: undefined,
    });
  }, 90_000);
});
