// Mesh (§19.2) between three `amp-relay` processes on loopback: host-a (default tenant alpha),
// host-b (beta) and host-c (gamma). A and B name each other in their AMP_MESH_CONFIG files with a
// shared secret (HMAC); A and C with each other's host key (Ed25519: the provider keys are
// written into the data dirs before the first start, so each file can name the other's key). Agents exchange signed messages by short address (`bob@host-b`), a full address unknown
// on one host is resolved through the peer, forged and replayed peer requests are refused, and a
// message queued while the peer is down survives a kill -9 of the sender's host and arrives once.

import { createHmac, verify as cryptoVerify, sign as cryptoSign } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalString, payloadHash } from '../../proto/index.js';
import { freePort } from '../helpers/ports.js';
import {
  type ChildServer,
  call,
  type Keypair,
  newKeypair,
  type Registered,
  register,
  route,
  routeOk,
  signMessage,
  spawnServer,
  tempDir,
} from '../helpers/server.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

const DOMAIN = 'aimaestro.local';
const SECRET = 'mesh-secret-of-at-least-16-chars';

interface Host {
  id: string;
  tenant: string;
  port: number;
  dir: string;
  file: string;
  child?: ChildServer;
  /** Its provider (host) key, written into its data dir before the first start. */
  key: Keypair;
}

const host = (id: string, tenant: string): Host => ({ id, tenant, port: 0, dir: '', file: '', key: newKeypair() });
const a = host('host-a', 'alpha');
const b = host('host-b', 'beta');
const c = host('host-c', 'gamma');
let alice: Registered;
let bob: Registered;
let carol: Registered;
let dave: Registered;

function api(h: Host): string {
  return `http://127.0.0.1:${h.port}/api/v1`;
}

async function start(h: Host): Promise<ChildServer> {
  const args = ['--port', String(h.port), '--mesh-config', h.file, '--default-tenant', h.tenant];
  h.child = await spawnServer(h.dir, args);
  return h.child;
}

/** `peers`: each with its authentication, a shared secret or the peer's host key. */
function writeConfig(h: Host, peers: Array<[Host, 'secret' | 'key']>): void {
  h.dir = tempDir(`amp-mesh-${h.id}-`);
  writeFileSync(join(h.dir, 'provider-ed25519.pem'), h.key.privatePem, { mode: 0o600 });
  h.file = join(h.dir, 'mesh.json');
  const hosts = peers.map(([peer, auth]) => ({
    id: peer.id,
    // host-b's entry names its URL with /v1, the others without: both forms are accepted.
    url: `http://127.0.0.1:${peer.port}${peer.id === 'host-b' ? '/v1' : ''}`,
    ...(auth === 'secret' ? { secret: SECRET } : { public_key: peer.key.publicPem }),
  }));
  // host-c's file is the bare object, the others have the {"mesh": …} wrapper.
  const mesh = { self_id: h.id, hosts };
  writeFileSync(h.file, JSON.stringify(h.id === 'host-c' ? mesh : { mesh }));
}

/** The pending messages of an agent on a host. */
async function pending(h: Host, agent: Registered): Promise<any[]> {
  const r = await call('GET', `${api(h)}/messages/pending?limit=100`, { key: agent.api_key });
  expect(r.status).toBe(200);
  return r.body.messages;
}

/**
 * The message `id` once it is in the agent's inbox on `h`: a WebSocket session gets the queued
 * messages at connect and later ones live, so this waits on frames (bounded), never polls.
 */
async function arrived(h: Host, agent: Registered, id: string, timeoutMs = 10_000): Promise<any> {
  const ws = await connectWs(`ws://127.0.0.1:${h.port}/v1/ws`, agent.api_key);
  try {
    const frame = await ws.next((f: any) => f?.type === 'message.new' && f.data?.id === id, timeoutMs);
    return frame.data;
  } finally {
    await ws.close();
  }
}

function signed(from: Registered, to: string, subject: string, message: string) {
  const payload = { type: 'notification', message };
  return {
    to,
    subject,
    payload,
    signature: signMessage(from.keys.privateKey, { from: from.address, to, subject, payload }),
  };
}

/** Checks a delivered message with the sender's own key, as any recipient would (node:crypto). */
function verifiesEndToEnd(m: any, sender: Registered): boolean {
  const e = m.envelope;
  const s = canonicalString({
    from: e.from,
    to: e.to,
    subject: e.subject,
    priority: e.priority,
    in_reply_to: e.in_reply_to,
    payload_hash: payloadHash(m.payload),
  });
  return cryptoVerify(null, Buffer.from(s, 'utf8'), sender.keys.publicKey, Buffer.from(e.signature, 'base64'));
}

interface ForgeOptions {
  ts?: number;
  secret?: string;
  host?: string;
  id?: string;
  to?: string;
  /** Replace or add body fields (e.g. the whole body of an earlier request). */
  fields?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A forwarded message as host-a would send it (to host-b by default), with its mesh headers. */
function forged(opts: ForgeOptions = {}) {
  const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
  const id = opts.id ?? `msg_${Date.now()}_${Math.random().toString(16).slice(2, 18).padEnd(16, '0')}`;
  const raw = JSON.stringify({
    from: alice.address,
    to: opts.to ?? bob.address,
    subject: 'forged?',
    priority: 'normal',
    payload: { type: 'notification', message: 'hello' },
    id,
    timestamp: new Date().toISOString(),
    ...opts.fields,
  });
  const mac = createHmac('sha256', opts.secret ?? SECRET)
    .update(`${ts}.${raw}`)
    .digest('hex');
  const headers = {
    'Content-Type': 'application/json',
    'X-AMP-Mesh-Host': opts.host ?? 'host-a',
    'X-AMP-Timestamp': ts,
    'X-AMP-Mesh-Auth': `sha256=${mac}`,
    'X-Forwarded-From': alice.address,
    ...opts.headers,
  };
  return { raw, headers, id: JSON.parse(raw).id as string };
}

beforeAll(async () => {
  for (const h of [a, b, c]) h.port = await freePort();
  writeConfig(a, [
    [b, 'secret'],
    [c, 'key'],
  ]);
  writeConfig(b, [[a, 'secret']]);
  writeConfig(c, [[a, 'key']]);
  await Promise.all([start(a), start(b), start(c)]);
  alice = await register(api(a), 'alice', 'alpha');
  bob = await register(api(b), 'bob', 'beta');
  carol = await register(api(b), 'carol', 'acme');
  dave = await register(api(c), 'dave', 'gamma');
}, 60_000);

afterAll(async () => {
  await closeAllWs();
  await Promise.all([a, b, c].map((h) => h.child?.stop('SIGKILL')));
  for (const h of [a, b, c]) if (h.dir) rmSync(h.dir, { recursive: true, force: true });
});

describe('mesh between two hosts', () => {
  it('advertises mesh-routing and reports the peer in /v1/health', async () => {
    const info = await call('GET', `${api(a)}/info`);
    expect(info.body.capabilities).toContain('mesh-routing');
    const ok = await until(
      async () => (await call('GET', `${api(a)}/health`)).body.mesh?.hosts_reachable === 2,
      20_000,
    );
    expect(ok).toBe(true);
    const h = await call('GET', `${api(a)}/health`);
    expect(h.body.mesh).toEqual({ enabled: true, hosts_configured: 2, hosts_reachable: 2, self_host_id: 'host-a' });
  });

  it("alice on A → bob@host-b: delivered by mesh, queued at B, verifiable with alice's own signature", async () => {
    const r = await routeOk(api(a), alice, signed(alice, 'bob@host-b', 'hello bob', 'from A'));
    expect(r).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-b' });
    expect(typeof r.delivered_at).toBe('string');
    const m = await arrived(b, bob, r.id);
    expect(m.envelope).toMatchObject({ id: r.id, from: alice.address, to: 'bob@host-b' });
    expect(m.security).toMatchObject({ signature_verified: true, sender_authenticated: true });
    expect(m.sender_public_key).toBe(
      alice.keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex'),
    );
    expect(verifiesEndToEnd(m, alice)).toBe(true);
    // On host-a itself, alice@host-a is alice of its default tenant (alpha): a local message.
    const self = await routeOk(api(a), alice, signed(alice, 'alice@host-a', 'note to self', 'local'));
    expect(self).toMatchObject({ status: 'queued', method: 'relay' });
    expect((await arrived(a, alice, self.id)).envelope.to).toBe('alice@host-a');
  });

  it('bob on B → alice@host-a while alice is online: pushed live on A, answer delivered/mesh', async () => {
    const ws = await connectWs(`ws://127.0.0.1:${a.port}/v1/ws`, alice.api_key);
    const r = await routeOk(api(b), bob, signed(bob, 'alice@host-a', 'hi alice', 'from B'));
    expect(r).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-a' });
    const frame = await ws.next((f: any) => f?.type === 'message.new' && f.data?.id === r.id, 10_000);
    expect(frame.data.envelope.from).toBe(bob.address);
    expect(verifiesEndToEnd(frame.data, bob)).toBe(true);
  });

  it('A and C authenticate with their host keys (X-AMP-Mesh-Signature): messages both ways', async () => {
    const r1 = await routeOk(api(a), alice, signed(alice, 'dave@host-c', 'to C', 'signed hosts'));
    expect(r1).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-c' });
    expect(verifiesEndToEnd(await arrived(c, dave, r1.id), alice)).toBe(true);
    const r2 = await routeOk(api(c), dave, signed(dave, 'alice@host-a', 'to A', 'back'));
    expect(r2).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-a' });
    expect(verifiesEndToEnd(await arrived(a, alice, r2.id), dave)).toBe(true);
    // Signed by another key than host-a's: refused.
    const f = forged({ to: dave.address });
    const ts = f.headers['X-AMP-Timestamp'];
    const sig = cryptoSign(null, Buffer.from(`${ts}.${f.raw}`), newKeypair().privateKey).toString('base64');
    const { 'X-AMP-Mesh-Auth': _mac, ...headers } = f.headers;
    const bad = await call('POST', `http://127.0.0.1:${c.port}/v1/route`, {
      raw: f.raw,
      headers: { ...headers, 'X-AMP-Mesh-Signature': sig },
    });
    expect([bad.status, bad.body.error]).toEqual([401, 'unauthorized']);
    expect(bad.body.message).toMatch(/X-AMP-Mesh-Signature is not/);
    // The same request signed by host-a's key is accepted.
    const good = cryptoSign(null, Buffer.from(`${ts}.${f.raw}`), a.key.privateKey).toString('base64');
    const ok = await call('POST', `http://127.0.0.1:${c.port}/v1/route`, {
      raw: f.raw,
      headers: { ...headers, 'X-AMP-Mesh-Signature': good },
    });
    expect(ok.status).toBe(200);
  });

  it('an org address unknown on B (alice@alpha.<domain>) is resolved through the peer', async () => {
    const r = await routeOk(api(b), bob, signed(bob, alice.address, 'reply', 'by full address'));
    expect(r).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-a' });
    const m = await arrived(a, alice, r.id);
    expect(verifiesEndToEnd(m, bob)).toBe(true);
    // carol@acme lives on B: A finds her through B; an address nobody has stays 404 not_found.
    const c = await routeOk(api(a), alice, signed(alice, carol.address, 'hi carol', 'org address'));
    expect(c).toMatchObject({ status: 'delivered', method: 'mesh', remote_host: 'host-b' });
    await arrived(b, carol, c.id);
    const none = await route(api(a), alice, signed(alice, `nobody@acme.${DOMAIN}`, 'lost', 'x'));
    expect(none.status).toBe(404);
    expect(none.body.error).toBe('not_found');
  });

  it("refuses X-Forwarded-From without authentication, and never lets it change an agent's sender", async () => {
    const bare = await call('POST', `${api(b)}/route`, {
      json: { from: alice.address, to: bob.address, subject: 's', payload: { type: 'notification', message: 'm' } },
      headers: { 'X-Forwarded-From': alice.address },
    });
    expect(bare.status).toBe(401);
    expect(bare.body.error).toBe('unauthorized');
    expect(bare.body.message).toMatch(/X-Forwarded-From/);
    const withKey = await route(
      api(b),
      carol,
      { from: alice.address, to: bob.address, subject: 's', payload: { type: 'notification', message: 'm' } },
      { 'X-Forwarded-From': alice.address },
    );
    expect(withKey.status).toBe(403);
    expect(withKey.body).toMatchObject({ error: 'forbidden', field: 'from' });
  });

  it('accepts a correctly authenticated forward once; a wrong MAC, a replay, a stale timestamp, an unknown host → 401', async () => {
    const url = `http://127.0.0.1:${b.port}/v1/route`;
    const good = forged();
    const first = await call('POST', url, { raw: good.raw, headers: good.headers });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: good.id, status: 'queued', method: 'relay' });
    const replay = await call('POST', url, { raw: good.raw, headers: good.headers });
    expect(replay.status).toBe(401);
    expect(replay.body.message).toMatch(/already accepted/);

    const wrong = forged({ secret: 'not-the-shared-secret-at-all' });
    const r1 = await call('POST', url, { raw: wrong.raw, headers: wrong.headers });
    expect([r1.status, r1.body.error]).toEqual([401, 'unauthorized']);
    expect(r1.body.message).toMatch(/not the HMAC/);

    const stale = forged({ ts: Math.floor(Date.now() / 1000) - 301 });
    const r2 = await call('POST', url, { raw: stale.raw, headers: stale.headers });
    expect([r2.status, r2.body.error]).toEqual([401, 'unauthorized']);
    expect(r2.body.message).toMatch(/±300 s/);

    const stranger = forged({ host: 'host-z' });
    const r3 = await call('POST', url, { raw: stranger.raw, headers: stranger.headers });
    expect([r3.status, r3.body.error]).toEqual([401, 'unauthorized']);
    expect(r3.body.message).toMatch(/not a mesh host configured here/);

    // Only the authenticated forward reached bob.
    const ids = (await pending(b, bob)).map((m) => m.id);
    expect(ids).toContain(good.id);
    for (const x of [wrong, stale, stranger]) expect(ids).not.toContain(x.id);
  });

  it('a repeated id answers duplicate (same content) or replay_detected; a peer cannot speak for a local agent', async () => {
    const url = `http://127.0.0.1:${b.port}/v1/route`;
    const first = forged();
    expect((await call('POST', url, { raw: first.raw, headers: first.headers })).status).toBe(200);
    // A peer's retry: the same message, forwarded again (a new forwarded_at, hence a new MAC).
    const again = forged({
      fields: { ...JSON.parse(first.raw), _forwarded: { forwarded_at: new Date().toISOString() } },
    });
    const dup = await call('POST', url, { raw: again.raw, headers: again.headers });
    expect(dup.status).toBe(200);
    expect(dup.body).toMatchObject({ id: first.id, duplicate: true });
    const other = forged({ fields: { ...JSON.parse(first.raw), subject: 'other content' } });
    const replayed = await call('POST', url, { raw: other.raw, headers: other.headers });
    expect([replayed.status, replayed.body.error]).toEqual([409, 'replay_detected']);
    expect((await pending(b, bob)).filter((m) => m.id === first.id)).toHaveLength(1);

    const asLocal = forged({ fields: { from: carol.address } });
    const r1 = await call('POST', url, { raw: asLocal.raw, headers: asLocal.headers });
    expect(r1.body).toMatchObject({ error: 'forbidden', field: 'from' });

    // Signed by another key than the one X-AMP-Sender-Key names: refused; by alice's own: verified.
    const payload = { type: 'notification', message: 'hello' };
    const fields = { from: alice.address, to: bob.address, subject: 'signed', payload };
    const senderKey = alice.keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex');
    const wrongSig = signMessage(newKeypair().privateKey, fields);
    const bad = forged({ fields: { ...fields, signature: wrongSig }, headers: { 'X-AMP-Sender-Key': senderKey } });
    const r2 = await call('POST', url, { raw: bad.raw, headers: bad.headers });
    expect([r2.status, r2.body.error]).toEqual([403, 'signature_invalid']);
    const sig = signMessage(alice.keys.privateKey, fields);
    const good = forged({ fields: { ...fields, signature: sig }, headers: { 'X-AMP-Sender-Key': senderKey } });
    expect((await call('POST', url, { raw: good.raw, headers: good.headers })).status).toBe(200);
    const m = await arrived(b, bob, good.id);
    expect(m.security.signature_verified).toBe(true);
    expect(verifiesEndToEnd(m, alice)).toBe(true);
  });

  it('a name the peer does not have: 404 naming the host, and nothing waits for it (no idempotent replay)', async () => {
    const body = { ...signed(alice, 'nobody@host-b', 'lost', 'x'), idempotency_key: 'idk_mesh_refused' };
    const r = await route(api(a), alice, body);
    expect([r.status, r.body.error, r.body.field]).toEqual([404, 'not_found', 'to']);
    expect(r.body.message).toContain('host-b');
    expect(r.body.details).toMatchObject({ remote_host: 'host-b', remote_status: 404 });
    const again = await route(api(a), alice, body);
    expect([again.status, again.headers.get('idempotent-replayed')]).toEqual([404, null]);
    const peers = await call('GET', `${api(a)}/peers`, { key: alice.api_key });
    const hostB = peers.body.mesh.find((p: any) => p.id === 'host-b');
    expect([hostB.pending, hostB.parked]).toEqual([0, 0]);
  });

  it('GET /v1/peers lists each host, reachable, with its deliveries; /metrics has them per peer', async () => {
    const unauth = await call('GET', `${api(a)}/peers`);
    expect(unauth.status).toBe(401);
    const r = await call('GET', `${api(a)}/peers`, { key: alice.api_key });
    expect(r.status).toBe(200);
    expect(r.body.federation).toEqual([]);
    const ids = r.body.mesh.map((p: any) => p.id).sort();
    expect(ids).toEqual(['host-b', 'host-c']);
    const hostB = r.body.mesh.find((p: any) => p.id === 'host-b');
    expect(hostB).toMatchObject({ url: `http://127.0.0.1:${b.port}`, reachable: true, breaker: 'closed' });
    expect(hostB.delivered).toBeGreaterThan(0);
    expect(typeof hostB.last_success_at).toBe('string');
    const metrics = await fetch(`http://127.0.0.1:${a.port}/metrics`).then((x) => x.text());
    expect(metrics).toMatch(/amp_peer_reachable\{kind="mesh",peer="host-b"\} 1/);
    expect(metrics).toMatch(/amp_peer_delivered_total\{kind="mesh",peer="host-b"\} [1-9]/);
  });

  it('B down: A answers queued; A killed -9 and restarted, B back: the message arrives exactly once', async () => {
    await b.child!.stop('SIGKILL');
    const r = await routeOk(api(a), alice, signed(alice, 'bob@host-b', 'while down', 'survives'));
    expect(r).toMatchObject({ status: 'queued', method: 'relay' });
    expect(await a.child!.stop('SIGKILL')).toBe('SIGKILL');
    await start(a);
    await start(b);
    const m = await arrived(b, bob, r.id, 45_000);
    expect(verifiesEndToEnd(m, alice)).toBe(true);
    // A's queue for host-b drains (its metric reads 0), and B holds the message once.
    const drained = await until(async () => {
      const text = (await call('GET', `http://127.0.0.1:${a.port}/metrics`)).body as string;
      return text.includes('amp_outbound_queue_depth') && !/amp_outbound_queue_depth\{kind="mesh"\} [1-9]/.test(text);
    }, 10_000);
    expect(drained).toBe(true);
    expect((await pending(b, bob)).filter((x) => x.id === r.id)).toHaveLength(1);
  }, 90_000);
});
