// Federation (spec §19.1) between two real providers, a.example and b.example, each an `amp-relay
// serve` child process (dist) on loopback, pinning the other (see test/helpers/federation.ts).
// Agents on both sides exchange signed messages with pushes to live sockets; every inbound refusal
// is shown with its code by signing requests as provider A (its key is in the test's hands) and
// varying one thing at a time; B down → A queues and delivers once B is back.

import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isoTime, newMessageId } from '../../proto/index.js';
import { deliverAs, type Provider, providerHeaders, start, stopAll, twoProviders } from '../helpers/federation.js';
import { call, newKeypair, type Keypair, register, type Registered, route, signMessage } from '../helpers/server.js';
import { closeAllWs, connectWs, until, type WsClient } from '../helpers/ws.js';

let a: Provider;
let b: Provider;
let alice: Registered; // on A
let bob: Registered; // on B
let bobWs: WsClient;
let aliceWs: WsClient;

beforeAll(async () => {
  ({ a, b } = await twoProviders());
  await Promise.all([start(a), start(b)]);
  alice = await register(a.api, 'alice', 'acme');
  bob = await register(b.api, 'bob', 'acme');
  [aliceWs, bobWs] = await Promise.all([connectWs(a.ws, alice.api_key), connectWs(b.ws, bob.api_key)]);
}, 60_000);

afterAll(async () => {
  await closeAllWs();
  await stopAll(a, b);
});

function signedRoute(from: Registered, to: string, subject: string, payload: Record<string, unknown>) {
  const signature = signMessage(from.keys.privateKey, { from: from.address, to, subject, payload });
  return route(from === alice ? a.api : b.api, from, { to, subject, payload, signature });
}

/** A delivery body as A's provider would build it for `sender`, signed with `keys`. */
function body(sender: Registered, to: string, o: { keys?: Keypair; payload?: unknown; id?: string; ts?: number } = {}) {
  const payload = (o.payload ?? { type: 'notification', message: `hello ${Math.random()}` }) as Record<string, unknown>;
  const keys = o.keys ?? sender.keys;
  const id = o.id ?? newMessageId();
  const subject = 'crafted';
  const envelope = {
    version: 'amp/0.1',
    id,
    from: sender.address,
    to,
    subject,
    priority: 'normal',
    timestamp: isoTime(o.ts ?? Date.now()),
    signature: signMessage(keys.privateKey, { from: sender.address, to, subject, payload }),
    thread_id: id,
  };
  return { envelope, payload, sender_public_key: keys.publicPem };
}

const raw = (v: unknown) => JSON.stringify(v);

function refused(r: { status: number; body: any }, status: number, code: string): void {
  expect({ status: r.status, error: r.body?.error, accepted: r.body?.accepted }, JSON.stringify(r.body)).toEqual({
    status,
    error: code,
    accepted: false,
  });
  expect(typeof r.body.message).toBe('string');
}

describe('discovery documents', () => {
  it('say federation: true (info, health, well-known, capability)', async () => {
    for (const p of [a, b]) {
      const info = await call('GET', `${p.api}/info`);
      expect(info.body.federation).toBe(true);
      expect(info.body.capabilities).toContain('federation');
      expect((await call('GET', `${p.api}/health`)).body.federation).toBe(true);
      const wk = await call('GET', `${p.api.replace('/api/v1', '')}/.well-known/agent-messaging.json`);
      expect(wk.body.federation).toBe(true);
    }
  });
});

describe('messages between the providers', () => {
  it('alice@A → bob@B and back, pushed to live sockets, signatures verified end to end', async () => {
    const r = await signedRoute(alice, bob.address, 'to B', { type: 'request', message: 'hi bob' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ status: 'queued', method: 'relay' });
    const got = await bobWs.next((f) => f?.type === 'message.new' && f.data.id === r.body.id, 15_000);
    expect(got.data.envelope).toMatchObject({ id: r.body.id, from: alice.address, to: bob.address, subject: 'to B' });
    expect(got.data.security).toMatchObject({ signature_verified: true, trust_level: 'external' });
    expect(got.data.sender_public_key).toBe(
      alice.keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex'),
    );

    const back = await signedRoute(bob, alice.address, 'to A', { type: 'response', message: 'hi alice' });
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    const reply = await aliceWs.next((f) => f?.type === 'message.new' && f.data.id === back.body.id, 15_000);
    expect(reply.data.envelope.from).toBe(bob.address);
    expect(reply.data.security.signature_verified).toBe(true);
    // GET /v1/peers (amp-status.sh) lists the pinned provider, reachable once it took a message.
    const peers = await call('GET', `${a.api}/peers`, { key: alice.api_key });
    expect(peers.body.federation).toEqual([
      expect.objectContaining({ id: 'b.example', url: b.api, reachable: true, delivered: 1, pending: 0 }),
    ]);
  });

  it('an unsigned message to another provider is refused by the sending provider (422 signature_missing)', async () => {
    const r = await route(a.api, alice, {
      to: bob.address,
      subject: 'x',
      payload: { type: 'notification', message: 'x' },
    });
    expect([r.status, r.body.error]).toEqual([422, 'signature_missing']);
  });

  it('a provider outside the allowlist is refused by the sending provider (403 provider_not_trusted)', async () => {
    const to = 'zoe@acme.c.example';
    const r = await signedRoute(alice, to, 'x', { type: 'notification', message: 'x' });
    expect([r.status, r.body.error, r.body.details?.provider]).toEqual([403, 'provider_not_trusted', 'c.example']);
  });

  it('a duplicate of an accepted id answers duplicate: true and delivers nothing new', async () => {
    const msg = body(alice, bob.address);
    const first = await deliverAs(b, a, raw(msg));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toEqual({ accepted: true, id: msg.envelope.id, delivered: true, method: 'websocket' });
    await bobWs.next((f) => f?.type === 'message.new' && f.data.id === msg.envelope.id);
    // Another second: Ed25519 signatures are deterministic, and the same one is taken once only.
    const again = await deliverAs(b, a, raw(msg), { ts: String(Math.floor(Date.now() / 1000) - 1) });
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    // Nothing new: the next frame bob gets is the next message, not a second copy.
    const later = body(alice, bob.address);
    expect((await deliverAs(b, a, raw(later))).status).toBe(200);
    const next = await bobWs.next((f) => f?.type === 'message.new', 5000);
    expect(next.data.id).toBe(later.envelope.id);
    const pending = await call('GET', `${b.api}/messages/pending?limit=100`, { key: bob.api_key });
    const ids = pending.body.messages.map((m: { id: string }) => m.id);
    expect(ids.filter((id: string) => id === msg.envelope.id)).toHaveLength(1);
  });
});

describe('inbound refusals (§19.1)', () => {
  let carol: Registered; // on B: the recipient of the crafted requests
  beforeAll(async () => {
    carol = await register(b.api, 'carol', 'acme');
  });

  it('a provider that is neither pinned nor allowed: 403 provider_not_trusted', async () => {
    const stranger = { ...a, domain: 'c.example' };
    refused(await deliverAs(b, stranger, raw(body(alice, carol.address))), 403, 'provider_not_trusted');
  });

  it('a sender of another provider than the delivering one: 403 provider_not_trusted', async () => {
    const msg = body(alice, carol.address);
    msg.envelope.from = 'mallory@acme.c.example';
    refused(await deliverAs(b, a, raw(msg)), 403, 'provider_not_trusted');
  });

  it('an unsigned message: 403 signature_invalid', async () => {
    const msg = body(alice, carol.address);
    msg.envelope.signature = '';
    refused(await deliverAs(b, a, raw(msg)), 403, 'signature_invalid');
  });

  it('a message whose signature does not verify with sender_public_key: 403 signature_invalid', async () => {
    const msg = body(alice, carol.address);
    msg.payload = { type: 'notification', message: 'tampered' };
    refused(await deliverAs(b, a, raw(msg)), 403, 'signature_invalid');
  });

  it("a key that is not the sender's key at its home provider: 403 key_mismatch", async () => {
    refused(await deliverAs(b, a, raw(body(alice, carol.address, { keys: newKeypair() }))), 403, 'key_mismatch');
  });

  it('a revoked key (rotated away at the home provider): 403 key_revoked', async () => {
    const dave = await register(a.api, 'dave', 'acme');
    const nk = newKeypair();
    const rotated = await call('POST', `${a.api}/auth/rotate-keys`, {
      key: dave.api_key,
      json: {
        new_public_key: nk.publicPem,
        key_algorithm: 'Ed25519',
        proof: sign(null, Buffer.from(nk.publicPem, 'utf8'), dave.keys.privateKey).toString('base64'),
      },
    });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    refused(await deliverAs(b, a, raw(body(dave, carol.address))), 403, 'key_revoked');
    // The new key is accepted.
    const ok = await deliverAs(b, a, raw(body(dave, carol.address, { keys: nk })));
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it('a key the delivering provider names in X-AMP-Key-Revoked: 403 key_revoked', async () => {
    const msg = body(alice, carol.address);
    const headers = { 'X-AMP-Key-Revoked': alice.body.fingerprint as string };
    refused(await deliverAs(b, a, raw(msg), { headers }), 403, 'key_revoked');
  });

  it('a repeated id with other content: 409 replay_detected', async () => {
    const msg = body(alice, carol.address);
    expect((await deliverAs(b, a, raw(msg))).status).toBe(200);
    refused(await deliverAs(b, a, raw(body(alice, carol.address, { id: msg.envelope.id }))), 409, 'replay_detected');
  });

  it('skewed provider timestamps: 403 signature_invalid (old), 400 timestamp_future (ahead)', async () => {
    const now = Math.floor(Date.now() / 1000);
    refused(
      await deliverAs(b, a, raw(body(alice, carol.address)), { ts: String(now - 400) }),
      403,
      'signature_invalid',
    );
    refused(await deliverAs(b, a, raw(body(alice, carol.address)), { ts: String(now + 400) }), 400, 'timestamp_future');
  });

  it('an envelope timestamp more than 60 s ahead: 400 timestamp_future', async () => {
    const msg = body(alice, carol.address, { ts: Date.now() + 120_000 });
    refused(await deliverAs(b, a, raw(msg)), 400, 'timestamp_future');
  });

  it('a provider signature by another key: 403 signature_invalid', async () => {
    const forged = { ...a, key: newKeypair().privateKey };
    refused(await deliverAs(b, forged, raw(body(alice, carol.address))), 403, 'signature_invalid');
  });

  it('a provider signature used twice: 409 replay_detected', async () => {
    const text = raw(body(alice, carol.address));
    const headers = providerHeaders(a, text);
    const once = await deliverAs(b, a, text, { ts: headers['X-AMP-Timestamp'], signature: headers['X-AMP-Signature'] });
    expect(once.status).toBe(200);
    const twice = await deliverAs(b, a, text, {
      ts: headers['X-AMP-Timestamp'],
      signature: headers['X-AMP-Signature'],
    });
    refused(twice, 409, 'replay_detected');
  });

  it('an unknown recipient: 404 recipient_not_found', async () => {
    refused(await deliverAs(b, a, raw(body(alice, 'nobody@acme.b.example'))), 404, 'recipient_not_found');
  });

  it('bad JSON, a missing envelope, an oversized body or message: 4xx with accepted: false', async () => {
    refused(await deliverAs(b, a, '{"envelope": '), 400, 'invalid_request');
    refused(await deliverAs(b, a, raw({ payload: {} })), 400, 'missing_field');
    const big = raw({ ...body(alice, carol.address), pad: 'x'.repeat(1_100_000) });
    refused(await deliverAs(b, a, big), 413, 'request_too_large');
    const stored = body(alice, carol.address, { payload: { type: 'notification', message: 'y'.repeat(600_000) } });
    refused(await deliverAs(b, a, raw(stored)), 413, 'payload_too_large');
  });

  it('the 20/min per-recipient limit: 429 rate_limited', async () => {
    const erin = await register(b.api, 'erin', 'acme');
    // Until the first 429 (tokens refill at 20/min while the loop runs, so one more may pass).
    const codes: number[] = [];
    for (let i = 0; i < 30 && codes.at(-1) !== 429; i++) {
      const msg = body(alice, erin.address);
      msg.envelope.signature = ''; // counted before the signature checks
      codes.push((await deliverAs(b, a, raw(msg))).status);
    }
    expect(codes.at(-1)).toBe(429);
    expect(codes.length).toBeGreaterThanOrEqual(21);
    expect(new Set(codes.slice(0, -1))).toEqual(new Set([403]));
  });
});

describe('key lookup GET /v1/federation/keys/{address}', () => {
  it("answers a pinned provider's signed request with the agent's key; refuses an unsigned one", async () => {
    const fp = alice.body.fingerprint as string;
    const signed = `${alice.address}\n${fp}`;
    const url = `${a.api}/federation/keys/${encodeURIComponent(alice.address)}?fingerprint=${encodeURIComponent(fp)}`;
    const r = await call('GET', url, { headers: providerHeaders(b, signed) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ address: alice.address, fingerprint: fp, key_revoked: false });
    expect(r.body.public_key.trim()).toBe(alice.keys.publicPem.trim());
    const anon = await call('GET', url);
    expect([anon.status, anon.body.error]).toEqual([403, 'provider_not_trusted']);
  });
});

/** Resolves on the first JSON log line of the provider's process that matches (10 s at most). */
function logged(p: Provider, match: (rec: Record<string, unknown>) => boolean): Promise<void> {
  const out = p.server!.proc.stdout!;
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`no matching log line of ${p.domain} within 10 s`)), 10_000);
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        try {
          if (match(JSON.parse(line))) return done();
        } catch {
          // not a log line
        }
      }
    };
    const done = (e?: Error) => {
      clearTimeout(timer);
      out.off('data', onData);
      if (e) reject(e);
      else resolve();
    };
    out.on('data', onData);
  });
}

describe('B down', () => {
  it('A answers queued/relay and delivers once B is back', async () => {
    await bobWs.close();
    await b.server!.stop();
    // Listening before the route: A's first attempt fails (a logged retry) before B comes back.
    const retried = logged(a, (rec) => rec.msg === 'outbound retry' && rec.target === 'federation:b.example');
    const r = await signedRoute(alice, bob.address, 'while B is down', { type: 'notification', message: 'later' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'queued', method: 'relay' });
    await retried;
    await start(b);
    // Connecting catches up from the queue; the message arrives once A's next retry got through
    // (retries 1 s, 5 s, 25 s after the first attempt: see FEDERATION_POLICY).
    const ws = await connectWs(b.ws, bob.api_key);
    const got = await ws.next((f) => f?.type === 'message.new' && f.data.id === r.body.id, 35_000);
    expect(got.data.envelope.subject).toBe('while B is down');
    // A's metrics count the federation target kind's failed and delivered attempts.
    const metrics = await call('GET', `${a.api.replace('/api/v1', '')}/metrics`);
    const count = (name: string) =>
      Number(new RegExp(`^${name}\\{kind="federation"\\} (\\d+)`, 'm').exec(metrics.body)?.[1]);
    expect(count('amp_outbound_failures_total')).toBeGreaterThanOrEqual(1);
    expect(count('amp_outbound_delivered_total')).toBeGreaterThanOrEqual(1); // this one may be counted just after
  }, 60_000);

  it('B down, A killed with -9 after answering queued and restarted: delivered once B is back, once', async () => {
    await b.server!.stop();
    const retried = logged(a, (rec) => rec.msg === 'outbound retry' && rec.target === 'federation:b.example');
    const r = await signedRoute(alice, bob.address, 'across a kill -9', { type: 'notification', message: 'kept' });
    expect(r.body).toMatchObject({ status: 'queued', method: 'relay' });
    await retried;
    expect(await a.server!.stop('SIGKILL')).toBe('SIGKILL');
    await start(a);
    await start(b);
    const ws = await connectWs(b.ws, bob.api_key);
    const got = await ws.next((f) => f?.type === 'message.new' && f.data.id === r.body.id, 35_000);
    expect(got.data.security.signature_verified).toBe(true);
    // The push precedes the commit: the pending list shows it once committed, once.
    let copies = 0;
    const listed = await until(async () => {
      const p = await call('GET', `${b.api}/messages/pending?limit=100`, { key: bob.api_key });
      copies = p.body.messages.filter((m: { id: string }) => m.id === r.body.id).length;
      return copies > 0;
    }, 5000);
    expect([listed, copies]).toEqual([true, 1]);
  }, 90_000);
});
