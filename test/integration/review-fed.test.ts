// Review of federation (spec §19.1): reproductions of defects found on the integration branch, now
// regression tests (`regression: …`, each failed before its fix). Two real providers (a.example,
// b.example) as child processes, as in federation.test.ts (test/helpers/federation.ts).

import { randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isoTime, newMessageId } from '../../proto/index.js';
import { deliverAs, type Provider, providerHeaders, start, stopAll, twoProviders } from '../helpers/federation.js';
import { call, type Keypair, newKeypair, register, type Registered, route, signMessage } from '../helpers/server.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

let a: Provider;
let b: Provider;
let alice: Registered; // on A
let bob: Registered; // on B
// A third provider, `acme.b.example` (a name under B's own domain), run by the test: its provider
// key, the sender key it vouches for, and its key-lookup endpoint (a tiny HTTP server).
const sub = { domain: 'acme.b.example', key: newKeypair(), sender: newKeypair() };
let subServer: Server;

beforeAll(async () => {
  ({ a, b } = await twoProviders());
  subServer = createServer((req, res) => {
    // GET /v1/federation/keys/<address>: "yes, that address's key is my sender key".
    const address = decodeURIComponent((req.url ?? '').split('/keys/')[1]?.split('?')[0] ?? '');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ address, public_key: sub.sender.publicPem, fingerprint: 'x', key_revoked: false }));
  });
  await new Promise<void>((r) => subServer.listen(0, '127.0.0.1', r));
  const subPort = (subServer.address() as AddressInfo).port;
  // B trusts acme.b.example (a pin here: DNS TXT or well-known discovery in `open` mode do the same).
  const pins = JSON.parse(readFileSync(b.pins, 'utf8'));
  pins[sub.domain] = { endpoint: `http://127.0.0.1:${subPort}/v1`, public_key: sub.key.publicPem };
  // And a provider under A's domain (sub.a.example): its agents are its own, not a.example's.
  pins['sub.a.example'] = { endpoint: `http://127.0.0.1:${subPort}/v1`, public_key: sub.key.publicPem };
  writeFileSync(b.pins, JSON.stringify(pins));
  await Promise.all([start(a), start(b)]);
  alice = await register(a.api, 'alice', 'acme');
  bob = await register(b.api, 'bob', 'acme');
}, 60_000);

afterAll(async () => {
  await closeAllWs();
  await stopAll(a, b);
  await new Promise((r) => subServer?.close(r));
});

const raw = (v: unknown) => JSON.stringify(v);

/** A delivery body as A's provider would build it for `sender`, signed with `keys`. */
function body(sender: Registered, to: string, keys: Keypair = sender.keys) {
  const payload = { type: 'notification', message: `hello ${Math.random()}` };
  const id = newMessageId();
  const subject = 'crafted';
  const envelope = {
    ...{ version: 'amp/0.1', id, from: sender.address, to, subject, priority: 'normal' },
    timestamp: isoTime(Date.now()),
    signature: signMessage(keys.privateKey, { from: sender.address, to, subject, payload }),
    thread_id: id,
  };
  return { envelope, payload, sender_public_key: keys.publicPem };
}

function signedRoute(from: Registered, keys: Keypair, to: string, subject: string) {
  const payload = { type: 'notification', message: subject };
  const signature = signMessage(keys.privateKey, { from: from.address, to, subject, payload });
  return route(a.api, from, { to, subject, payload, signature });
}

/** Collects the JSON log lines of the provider's process that match, until `stop()`; `first` resolves on one. */
function watch(p: Provider, match: (rec: Record<string, unknown>) => boolean) {
  const out = p.server!.proc.stdout!;
  const hits: Record<string, unknown>[] = [];
  let found: (rec: Record<string, unknown>) => void = () => {};
  const first = new Promise<Record<string, unknown>>((resolve) => {
    found = resolve;
  });
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (match(rec)) {
          hits.push(rec);
          found(rec);
        }
      } catch {
        // not a log line
      }
    }
  };
  out.on('data', onData);
  return { hits, first, stop: () => out.off('data', onData) };
}

async function pendingIds(p: Provider, who: Registered): Promise<string[]> {
  const r = await call('GET', `${p.api}/messages/pending?limit=100`, { key: who.api_key });
  return r.body.messages.map((m: { id: string }) => m.id);
}

describe('review: federation (§19.1)', () => {
  it('regression: a message signed with the sender’s new key right after a key rotation is delivered (B asks A again)', async () => {
    // B learns alice's key K1 (cached by B's HomeKeys).
    const first = await signedRoute(alice, alice.keys, bob.address, 'before rotation');
    expect(first.status, raw(first.body)).toBe(200);
    expect(await until(async () => (await pendingIds(b, bob)).includes(first.body.id), 15_000)).toBe(true);
    // alice rotates to K2 at her home provider A (a legitimate, documented operation).
    const k2 = newKeypair();
    const rotated = await call('POST', `${a.api}/auth/rotate-keys`, {
      key: alice.api_key,
      json: {
        new_public_key: k2.publicPem,
        key_algorithm: 'Ed25519',
        proof: sign(null, Buffer.from(k2.publicPem, 'utf8'), alice.keys.privateKey).toString('base64'),
      },
    });
    expect(rotated.status, raw(rotated.body)).toBe(200);
    // A message correctly signed with her current key K2, through her provider: A answers queued...
    const bobWs = await connectWs(b.ws, bob.api_key);
    const refusals = watch(a, (rec) => rec.event === 'federation_refused' || rec.event === 'federation_retry');
    const second = await signedRoute(alice, k2, bob.address, 'after rotation');
    expect(second.status, raw(second.body)).toBe(200);
    // ...and B, whose cached K1 is less than a minute old, asks A again instead of answering 403
    // key_mismatch (which A used to park for good): delivered on the first attempt, no refusal at A.
    const pushed = bobWs.next((f) => f?.type === 'message.new' && f.data?.id === second.body.id, 15_000);
    const outcome = await Promise.race([pushed.then(() => 'delivered'), refusals.first.then(() => 'refused')]);
    refusals.stop();
    expect(refusals.hits, `A logged ${raw(refusals.hits)}`).toEqual([]);
    expect(outcome).toBe('delivered');
  }, 60_000);

  it('regression: a provider under our own domain (acme.b.example) cannot deliver as our own local agent bob@acme.b.example', async () => {
    const carol = await register(b.api, 'carol2', 'acme');
    expect(bob.address).toBe('bob@acme.b.example'); // B's own agent bob, tenant acme
    // acme.b.example signs a message "from bob@acme.b.example" with a key of its choosing.
    const spoof = body({ ...bob, keys: sub.sender }, carol.address);
    const text = raw(spoof);
    const headers = {
      'Content-Type': 'application/json',
      ...providerHeaders({ ...a, domain: sub.domain, key: sub.key.privateKey }, text),
    };
    const r = await call('POST', `${b.api.replace('/api/v1', '/v1')}/federation/deliver`, { raw: text, headers });
    // B's own agents can only be spoken for by B: this must be refused (403 provider_not_trusted).
    const pending = await call('GET', `${b.api}/messages/pending?limit=100`, { key: carol.api_key });
    const got = pending.body.messages.find((m: { id: string }) => m.id === spoof.envelope.id);
    expect(got?.envelope.from, raw(got?.security)).toBeUndefined();
    expect([r.status, r.body?.error], raw(r.body)).toEqual([403, 'provider_not_trusted']);
  });

  it('regression: a.example cannot deliver for the agents of sub.a.example (envelope.from’s provider is its longest known domain)', async () => {
    const eve = { ...alice, address: 'eve@sub.a.example' };
    const r = await deliverAs(b, a, raw(body(eve, bob.address)));
    // It used to be taken as a.example's agent (its two last labels) and go on to the key checks.
    expect([r.status, r.body?.error], raw(r.body)).toEqual([403, 'provider_not_trusted']);
  });

  it('regression: the same message again with its payload keys in another order is a duplicate, not 409 replay_detected', async () => {
    const dan = await register(b.api, 'dan', 'acme');
    const frank = await register(a.api, 'frank', 'acme');
    const msg = body(frank, dan.address);
    msg.payload = { type: 'notification', message: 'same content' };
    msg.envelope.signature = signMessage(frank.keys.privateKey, {
      ...{ from: frank.address, to: dan.address, subject: msg.envelope.subject, payload: msg.payload },
    });
    const first = await deliverAs(b, a, raw(msg));
    expect(first.status, raw(first.body)).toBe(200);
    // The same message as another implementation may serialise it on a retry: the same canonical
    // payload (the signature still verifies), its keys in another order.
    const again = { ...msg, payload: { message: 'same content', type: 'notification' } };
    const ts = String(Math.floor(Date.now() / 1000) - 1); // another provider signature
    const r = await deliverAs(b, a, raw(again), { ts });
    expect([r.status, r.body?.duplicate], raw(r.body)).toEqual([200, true]);
  });

  it('regression: the 20/min per-recipient limit is per agent: the same agent by its short address gets no more', async () => {
    const gus = await register(b.api, 'gus', 'acme', { scope: { platform: 'github', repo: 'web' } });
    expect([gus.address, gus.body.short_address]).toEqual(['gus@web.github.acme.b.example', 'gus@acme.b.example']);
    const unsigned = (to: string) => {
      const msg = body(alice, to);
      msg.envelope.signature = ''; // counted before the signature checks (as in federation.test.ts)
      return deliverAs(b, a, raw(msg)).then((r) => r.status);
    };
    const codes: number[] = [];
    for (let i = 0; i < 30 && codes.at(-1) !== 429; i++) codes.push(await unsigned(gus.address));
    expect(codes.at(-1)).toBe(429); // gus's 20/min from a.example are spent
    // The same recipient, named by its short address: still gus, so still 429.
    expect(await unsigned(gus.body.short_address)).toBe(429);
  });

  it('regression: reading a message from another provider answers read_receipt_sent: false (receipts do not cross providers)', async () => {
    const hank = await register(a.api, 'hank', 'acme');
    const ivy = await register(b.api, 'ivy', 'acme');
    const msg = body(hank, ivy.address);
    expect((await deliverAs(b, a, raw(msg))).status).toBe(200);
    // The answer says no receipt went (it used to say true, and keep it in an outbox of no local agent).
    const read = await call('POST', `${b.api}/messages/${msg.envelope.id}/read`, { key: ivy.api_key });
    expect([read.status, read.body]).toEqual([200, { read_receipt_sent: false, reason: 'sender_not_local' }]);
    const again = await call('POST', `${b.api}/messages/${msg.envelope.id}/read`, { key: ivy.api_key });
    expect(again.body).toEqual({ read_receipt_sent: false, already_read: true, reason: 'sender_not_local' });
  }, 30_000);

  it('regression: requests with a forged provider signature do not spend the 1000/min overall budget', async () => {
    const carol = await register(b.api, 'carol', 'acme');
    const erin = await register(a.api, 'erin', 'acme');
    const forged = () => {
      const text = raw(body(erin, carol.address));
      const ts = String(Math.floor(Date.now() / 1000));
      // Anyone can send these: X-AMP-Provider names the pinned a.example, the signature is garbage.
      const signature = randomBytes(64).toString('base64');
      return deliverAs(b, a, text, { ts, signature });
    };
    // 1300 forged requests within a few seconds: more than the overall 1000/min (and its refill)
    // would allow if they counted. They are refused as 403 signature_invalid; from loopback (the
    // local profile's per-IP exemption) the failed-signature bucket does not apply either.
    const seen = new Map<number, number>();
    for (let round = 0; round < 52; round++) {
      const codes = await Promise.all(Array.from({ length: 25 }, () => forged().then((r) => r.status)));
      for (const c of codes) seen.set(c, (seen.get(c) ?? 0) + 1);
    }
    expect(Object.fromEntries(seen)).toEqual({ 403: 1300 });
    // A's genuine, correctly signed delivery is still accepted.
    const genuine = await deliverAs(b, a, raw(body(erin, carol.address)));
    expect([genuine.status, genuine.body?.error], raw(genuine.body)).toEqual([200, undefined]);
  }, 60_000);
});
