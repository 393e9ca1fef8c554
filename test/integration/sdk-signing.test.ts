// The SDK signs (spec §10): signMessage builds the v1.1 canonical string and signs it with
// Ed25519, and a client or socket that holds its agent's private key signs every route, so the
// recipient sees trust_level verified. A wrong key is refused by the server (the signature is
// really sent), and a client without a key still sends unsigned (untrusted).

import { generateKeyPairSync, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalString, payloadHash } from '../../proto/index.js';
import { AmpClient, type AmpSocket, generateKeyPair, type QueuedMessage, signMessage } from '../../src/client/index.js';
import { waitFor } from '../helpers/events.js';
import { sdkAgent } from '../helpers/sdk.js';
import { newKeypair, startTestServer, type TestServer } from '../helpers/server.js';

const payload = { type: 'request', message: 'héllo', context: { b: [1, null], a: '\u2028', 10: true, 9: false } };

describe('signMessage', () => {
  const keys = newKeypair();
  const fields = { from: 'alice@acme.x', to: 'bob', subject: 'Hi|there', payload };

  it('signs the canonical string with Ed25519 (priority normal, in_reply_to empty when absent)', () => {
    const sig = signMessage(fields, keys.privatePem);
    const text = `alice@acme.x|bob|Hi|there|normal||${payloadHash(payload)}`;
    expect(
      canonicalString({ from: 'alice@acme.x', to: 'bob', subject: 'Hi|there', payload_hash: payloadHash(payload) }),
    ).toBe(text);
    expect(Buffer.from(sig, 'base64')).toHaveLength(64);
    expect(verify(null, Buffer.from(text), keys.publicKey, Buffer.from(sig, 'base64'))).toBe(true);
  });

  it('signs priority and in_reply_to, takes the envelope form and a KeyObject alike', () => {
    const full = { ...fields, priority: 'urgent', in_reply_to: 'msg_1_abc' };
    const sig = signMessage(full, keys.privateKey);
    const text = `alice@acme.x|bob|Hi|there|urgent|msg_1_abc|${payloadHash(payload)}`;
    expect(verify(null, Buffer.from(text), keys.publicKey, Buffer.from(sig, 'base64'))).toBe(true);
    const { payload: p, ...envelope } = full;
    expect(signMessage({ envelope, payload: p }, keys.privatePem)).toBe(sig);
  });

  it('hashes the payload as JSON.stringify sends it (a Date as its string, undefined dropped or null)', () => {
    const when = new Date('2026-01-02T03:04:05.678Z');
    const odd = { type: 'request', message: '', context: { when, xs: [1, undefined], gone: undefined } };
    const sent = { type: 'request', message: '', context: { when: when.toISOString(), xs: [1, null] } };
    expect(signMessage({ ...fields, payload: odd }, keys.privatePem)).toBe(
      signMessage({ ...fields, payload: sent }, keys.privatePem),
    );
  });

  it('refuses a key that is not an Ed25519 private key, with a clear error', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    expect(() => signMessage(fields, rsa as string)).toThrow(/rsa key; AMP signs with Ed25519/);
    expect(() => signMessage(fields, keys.publicPem)).toThrow(/not a PEM private key/);
    expect(() => new AmpClient({ baseUrl: 'http://127.0.0.1:1', privateKey: 'nope' })).toThrow(/not a PEM private key/);
  });

  it('generateKeyPair gives a working PEM pair', () => {
    const k = generateKeyPair();
    expect(k.privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(k.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });
});

describe('signed routes against the real server', () => {
  let t: TestServer;
  const sockets: AmpSocket[] = [];
  beforeAll(async () => {
    t = await startTestServer({ rateLimits: 'off' });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
  });

  async function agentWithKey(name: string) {
    const keys = generateKeyPair();
    const r = await AmpClient.register(
      t.url,
      { name, tenant: 'acme', public_key: keys.publicPem },
      { privateKey: keys.privatePem },
    );
    return { ...r, keys };
  }

  async function onlyPending(client: AmpClient): Promise<QueuedMessage> {
    const list = await client.pending();
    expect(list.count).toBe(1);
    await client.ack(list.messages[0].id);
    return list.messages[0];
  }

  it('a client registered with its private key signs REST routes: the recipient sees verified', async () => {
    const a = await agentWithKey('rest-a');
    const b = await sdkAgent(t, 'rest-b');
    await a.client.route({ to: 'rest-b', subject: 'by name', priority: 'high', payload });
    const m = await onlyPending(b.client);
    expect(m.security).toMatchObject({ trust_level: 'verified', signature_verified: true });
    expect(m.envelope.signature).not.toBe('');
    expect(m.envelope.from).toBe(a.registration.address);
  });

  it('a client given only an API key and a private key looks its address up, and signs', async () => {
    const a = await agentWithKey('lookup-a');
    const b = await sdkAgent(t, 'lookup-b');
    const c = new AmpClient({ baseUrl: t.url, apiKey: a.registration.api_key, privateKey: a.keys.privatePem });
    await c.route({ to: b.registration.address, subject: 's', payload });
    expect(c.address).toBe(a.registration.address);
    expect((await onlyPending(b.client)).security.trust_level).toBe('verified');
  });

  it('the wrong private key is refused (403 signature_invalid): the signature is really sent', async () => {
    const a = await agentWithKey('wrong-a');
    await sdkAgent(t, 'wrong-b');
    const c = new AmpClient({ baseUrl: t.url, apiKey: a.registration.api_key, privateKey: newKeypair().privateKey });
    await expect(c.route({ to: 'wrong-b', subject: 's', payload })).rejects.toMatchObject({
      status: 403,
      code: 'signature_invalid',
    });
  });

  it('a client without a private key still sends unsigned (untrusted)', async () => {
    const a = await sdkAgent(t, 'plain-a');
    const b = await sdkAgent(t, 'plain-b');
    await a.client.route({ to: 'plain-b', subject: 's', payload });
    expect((await onlyPending(b.client)).security.trust_level).toBe('untrusted');
  });

  it('socket routes of a keyed client are signed too, and pushed verified', async () => {
    const a = await agentWithKey('ws-a');
    const b = await sdkAgent(t, 'ws-b');
    const bs = b.client.connect();
    const as = a.client.connect();
    sockets.push(bs, as);
    await Promise.all([bs.ready(), as.ready()]);
    const pushed = waitFor<[QueuedMessage]>(bs, 'message');
    const sent = await as.route({ to: 'ws-b', subject: 'over ws', payload });
    const [m] = await pushed;
    expect(m.id).toBe(sent.id);
    expect(m.security.trust_level).toBe('verified');
    expect(await bs.ack(m.id)).toEqual({ acknowledged: 1 });
  });

  // What JSON.stringify sends is what is signed: a Date goes as its ISO string, an undefined member
  // is dropped and an undefined array item becomes null (signing the JS object instead gave 403
  // signature_invalid for a Date and a TypeError for undefined).
  const when = new Date('2026-01-02T03:04:05.678Z');
  const odd = { type: 'request', message: 'odd', context: { when, xs: [1, undefined], gone: undefined } };
  const oddSent = { type: 'request', message: 'odd', context: { when: when.toISOString(), xs: [1, null] } };

  it('REST: a Date and undefined in the payload are signed as sent and arrive verified', async () => {
    const a = await agentWithKey('odd-rest-a');
    const b = await sdkAgent(t, 'odd-rest-b');
    await a.client.route({ to: 'odd-rest-b', subject: 'odd', payload: odd });
    const m = await onlyPending(b.client);
    expect(m.security).toMatchObject({ trust_level: 'verified', signature_verified: true });
    expect(m.payload).toEqual(oddSent);
  });

  it('WS: a Date and undefined in the payload are signed as sent and arrive verified', async () => {
    const a = await agentWithKey('odd-ws-a');
    const b = await sdkAgent(t, 'odd-ws-b');
    const bs = b.client.connect();
    const as = a.client.connect();
    sockets.push(bs, as);
    await Promise.all([bs.ready(), as.ready()]);
    const pushed = waitFor<[QueuedMessage]>(bs, 'message');
    await as.route({ to: 'odd-ws-b', subject: 'odd', payload: odd });
    const [m] = await pushed;
    expect(m.security.trust_level).toBe('verified');
    expect(m.payload).toEqual(oddSent);
    expect(await bs.ack(m.id)).toEqual({ acknowledged: 1 });
  });

  it('a keyed socket that is not connected yet refuses to route rather than send unsigned', async () => {
    const a = await agentWithKey('early-a');
    const s = a.client.connect();
    sockets.push(s);
    await expect(s.route({ to: 'early-a', subject: 's', payload })).rejects.toThrow(/not connected yet/);
    await s.ready();
  });
});

describe('signatures required', () => {
  it('a keyed SDK client passes AMP_SIGNATURES=required; an unkeyed one gets 422 signature_missing', async () => {
    const t = await startTestServer({ signatures: 'required' });
    try {
      const keys = generateKeyPair();
      const body = { name: 'req-a', tenant: 'acme', public_key: keys.publicPem };
      const a = await AmpClient.register(t.url, body, { privateKey: keys.privatePem });
      const plain = new AmpClient({ baseUrl: t.url, apiKey: a.registration.api_key });
      await expect(plain.route({ to: 'req-a', subject: 's', payload })).rejects.toMatchObject({
        code: 'signature_missing',
      });
      expect((await a.client.route({ to: 'req-a', subject: 's', payload })).status).toBe('queued');
    } finally {
      await t.close();
    }
  });
});
