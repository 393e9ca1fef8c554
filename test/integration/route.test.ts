// Routing (spec §11, §12): sender, recipient resolution, signatures, server-assigned fields; a
// signed payload is stored byte for byte; a reply inherits a thread only from a message its sender
// was party to.
// Runs on both stores (the LMDB default and cluster mode on NATS JetStream): test/helpers/store-matrix.ts.

import { verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalString, isGeneratedMessageId, payloadHash } from '../../proto/index.js';
import {
  call,
  register,
  route,
  signMessage,
  startTestServer,
  type Registered,
  type TestServer,
} from '../helpers/server.js';
import { STORES, storeOptions, useStoreMatrix } from '../helpers/store-matrix.js';

useStoreMatrix();

describe.each(STORES)('%s store', (store) => {
  let t: TestServer;
  let alice: Registered;
  let bob: Registered;
  let eve: Registered; // other tenant
  let scoped: Registered;

  beforeAll(async () => {
    t = await startTestServer(await storeOptions(store));
    alice = await register(t.api, 'alice', 'acme');
    bob = await register(t.api, 'bob', 'acme');
    eve = await register(t.api, 'eve', 'other');
    scoped = await register(t.api, 'sc', 'acme', { scope: { platform: 'github', repo: 'web' } });
  });
  afterAll(() => t.close());

  const newest = async (who: Registered) => {
    const r = await call('GET', `${t.api}/messages/pending?limit=100`, { key: who.api_key });
    return r.body.messages.at(-1);
  };
  const pending = async (who: Registered) =>
    (await call('GET', `${t.api}/messages/pending?limit=100`, { key: who.api_key })).body;
  const msg = (to: string, extra: Record<string, unknown> = {}) => ({
    to,
    subject: 'Hi',
    payload: { type: 'request', message: 'hello' },
    ...extra,
  });

  describe('route: unsigned', () => {
    it('queues with server-assigned id, timestamp and thread, as untrusted', async () => {
      const r = await route(
        t.api,
        alice,
        msg('bob@acme.aimaestro.local', { id: 'msg_1_evil', timestamp: '2000-01-01T00:00:00Z' }),
      );
      expect(r.status).toBe(200);
      expect(isGeneratedMessageId(r.body.id)).toBe(true);
      expect(r.body).toMatchObject({ status: 'queued', method: 'relay', thread_id: r.body.id });
      const item = await newest(bob);
      expect(item.id).toBe(r.body.id);
      expect(item.envelope).toEqual({
        version: 'amp/0.1',
        id: r.body.id,
        from: 'alice@acme.aimaestro.local',
        to: 'bob@acme.aimaestro.local',
        subject: 'Hi',
        priority: 'normal',
        timestamp: item.envelope.timestamp,
        signature: '',
        thread_id: r.body.id,
      });
      expect(Math.abs(Date.parse(item.envelope.timestamp) - Date.now())).toBeLessThan(60_000);
      expect(item.queued_at).toBe(item.envelope.timestamp);
      expect(Date.parse(item.expires_at) - Date.parse(item.queued_at)).toBe(7 * 24 * 3600 * 1000);
      expect(item.security).toEqual({
        trust_level: 'untrusted',
        signature_verified: false,
        sender_authenticated: true,
        injection_flags: [],
      });
      expect(item.sender_public_key).toBe('');
    });

    it.each([
      ['bare name (sender tenant)', 'bob'],
      ['name@tenant', 'bob@acme'],
      ['upper case', 'BOB@ACME.AIMAESTRO.LOCAL'],
      ['short form of a scoped agent', 'sc@acme.aimaestro.local'],
    ])('expands %s', async (_label, to) => {
      const r = await route(t.api, alice, msg(to));
      expect(r.status).toBe(200);
      const target = to.startsWith('sc') ? scoped : bob;
      expect((await newest(target)).id).toBe(r.body.id);
    });

    it('reaches a scoped agent by its full address, not with wrong scope labels', async () => {
      expect((await route(t.api, alice, msg('sc@web.github.acme.aimaestro.local'))).status).toBe(200);
      const wrong = await route(t.api, alice, msg('sc@api.github.acme.aimaestro.local'));
      expect(wrong.status).toBe(404);
      expect(wrong.body).toMatchObject({ error: 'not_found', field: 'to', message: 'Agent not found' });
    });

    it('accepts `from` equal to the sender, in any case; keeps payload values untouched', async () => {
      const payload = {
        type: 'github:pull_request',
        message: '',
        context: null,
        extra: { '10': 1, '9': 2 },
        list: [3, 1],
      };
      const r = await route(t.api, alice, {
        ...msg('bob'),
        from: 'ALICE@acme.aimaestro.local',
        payload,
        priority: 'urgent',
      });
      expect(r.status).toBe(200);
      const item = await newest(bob);
      expect(item.payload).toEqual(payload);
      expect(item.envelope.priority).toBe('urgent');
    });

    it('threads replies: in_reply_to of a known message inherits its thread', async () => {
      const first = await route(t.api, alice, msg('bob'));
      const reply = await route(t.api, bob, msg('alice', { in_reply_to: first.body.id }));
      expect(reply.body.thread_id).toBe(first.body.id);
      const third = await route(t.api, alice, msg('bob', { in_reply_to: reply.body.id }));
      expect(third.body.thread_id).toBe(first.body.id);
      const item = await newest(bob);
      expect(item.envelope.in_reply_to).toBe(reply.body.id);
      // Unknown in_reply_to: the thread is the replied-to id; an explicit thread_id wins.
      const orphan = await route(t.api, alice, msg('bob', { in_reply_to: 'msg_1700000000_abc' }));
      expect(orphan.body.thread_id).toBe('msg_1700000000_abc');
      const explicit = await route(
        t.api,
        alice,
        msg('bob', { in_reply_to: first.body.id, thread_id: 'msg-1700000000-XYZ' }),
      );
      expect(explicit.body.thread_id).toBe('msg-1700000000-XYZ');
    });

    it('caps relay expiry at the message expires_at', async () => {
      const exp = new Date(Date.now() + 3_600_000).toISOString();
      await route(t.api, alice, msg('bob', { expires_at: exp.replace('Z', '+00:00') }));
      const item = await newest(bob);
      expect(item.envelope.expires_at).toBe(exp);
      expect(item.expires_at).toBe(exp);
    });
  });

  describe('route: signed', () => {
    const payload = { type: 'request', message: 'Can you review PR 42?', context: { repo: 'agents-web', pr: 42 } };

    it('verifies and marks trust: verified in-tenant, external across tenants', async () => {
      const sig = signMessage(alice.keys.privateKey, {
        from: alice.address,
        to: bob.address,
        subject: 'Review',
        priority: 'high',
        payload,
      });
      const r = await route(t.api, alice, {
        to: bob.address,
        subject: 'Review',
        priority: 'high',
        payload,
        signature: sig,
      });
      expect(r.status).toBe(200);
      const item = await newest(bob);
      expect(item.envelope.signature).toBe(sig);
      expect(item.security).toMatchObject({ trust_level: 'verified', signature_verified: true });
      expect(item.sender_public_key).toBe(
        alice.keys.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex'),
      );

      const sig2 = signMessage(alice.keys.privateKey, { from: alice.address, to: eve.address, subject: 'Hi', payload });
      const x = await route(t.api, alice, { to: eve.address, subject: 'Hi', payload, signature: sig2 });
      expect(x.status).toBe(200);
      expect((await newest(eve)).security.trust_level).toBe('external');
    });

    it('verifies a signature over the short `to` as sent and stores that spelling', async () => {
      const sig = signMessage(alice.keys.privateKey, { from: alice.address, to: 'bob', subject: 'Short', payload });
      const r = await route(t.api, alice, { to: 'bob', subject: 'Short', payload, signature: sig });
      expect(r.status).toBe(200);
      const item = await newest(bob);
      expect(item.envelope.to).toBe('bob');
      expect(item.security.signature_verified).toBe(true);
    });

    it('verifies a scoped sender signing with its short address', async () => {
      const sig = signMessage(scoped.keys.privateKey, {
        from: 'sc@acme.aimaestro.local',
        to: bob.address,
        subject: 'S',
        payload,
      });
      const r = await route(t.api, scoped, { to: bob.address, subject: 'S', payload, signature: sig });
      expect(r.status).toBe(200);
      expect((await newest(bob)).envelope.from).toBe('sc@acme.aimaestro.local');
    });

    it('accepts the envelope form and uses its signed fields', async () => {
      const sig = signMessage(alice.keys.privateKey, {
        from: alice.address,
        to: bob.address,
        subject: 'Env',
        priority: 'low',
        payload,
      });
      const r = await route(t.api, alice, {
        envelope: {
          version: 'amp/0.1',
          id: 'msg_1_client',
          timestamp: '2001-01-01T00:00:00Z',
          from: alice.address,
          to: bob.address,
          subject: 'Env',
          priority: 'low',
          signature: sig,
        },
        payload,
      });
      expect(r.status).toBe(200);
      expect(r.body.id).not.toBe('msg_1_client');
      const item = await newest(bob);
      expect(item.envelope).toMatchObject({ subject: 'Env', priority: 'low', signature: sig, from: alice.address });
      expect(item.security.signature_verified).toBe(true);
    });

    it.each([
      ['payload', { payload: { ...payload, message: 'changed' } }],
      ['subject', { subject: 'Changed' }],
      ['priority', { priority: 'urgent' }],
      ['in_reply_to', { in_reply_to: 'msg_1700000000_abcdef' }],
      ['recipient', { to: 'eve@other.aimaestro.local' }],
    ])('refuses a signature after tampering with %s, and queues nothing', async (_label, change) => {
      const base = { to: bob.address, subject: 'Review', priority: 'high', payload };
      const sig = signMessage(alice.keys.privateKey, { from: alice.address, ...base });
      const before = (await call('GET', `${t.api}/messages/pending?limit=100`, { key: bob.api_key })).body.count;
      const r = await route(t.api, alice, { ...base, ...change, signature: sig });
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ error: 'signature_invalid', details: { from: alice.address } });
      expect((await call('GET', `${t.api}/messages/pending?limit=100`, { key: bob.api_key })).body.count).toBe(before);
    });

    it("refuses a signature made by another agent's key", async () => {
      const sig = signMessage(eve.keys.privateKey, { from: alice.address, to: bob.address, subject: 'X', payload });
      const r = await route(t.api, alice, { to: bob.address, subject: 'X', payload, signature: sig });
      expect(r.status).toBe(403);
      expect(r.body.error).toBe('signature_invalid');
    });
  });

  describe('policies', () => {
    it('signatures: required refuses unsigned messages and accepts signed ones', async () => {
      const t2 = await startTestServer({ ...(await storeOptions(store)), signatures: 'required' });
      try {
        const a = await register(t2.api, 'a', 'x');
        const b = await register(t2.api, 'b', 'x');
        const p = { type: 'notification', message: 'x' };
        const unsigned = await call('POST', `${t2.api}/route`, {
          key: a.api_key,
          json: { to: 'b', subject: 's', payload: p },
        });
        expect(unsigned.status).toBe(422);
        expect(unsigned.body.error).toBe('signature_missing');
        const sig = signMessage(a.keys.privateKey, { from: a.address, to: b.address, subject: 's', payload: p });
        const signed = await call('POST', `${t2.api}/route`, {
          key: a.api_key,
          json: { to: b.address, subject: 's', payload: p, signature: sig },
        });
        expect(signed.status).toBe(200);
        expect((await call('GET', `${t2.api}/info`)).body.signatures).toBe('required');
      } finally {
        await t2.close();
      }
    });

    it('cross-tenant: deny refuses other tenants with 403 forbidden', async () => {
      const t2 = await startTestServer({ ...(await storeOptions(store)), crossTenant: 'deny' });
      try {
        const a = await register(t2.api, 'a', 'x');
        await register(t2.api, 'b', 'y');
        await register(t2.api, 'c', 'x');
        const p = { type: 'notification', message: 'x' };
        const cross = await call('POST', `${t2.api}/route`, {
          key: a.api_key,
          json: { to: 'b@y.aimaestro.local', subject: 's', payload: p },
        });
        expect(cross.status).toBe(403);
        expect(cross.body.error).toBe('forbidden');
        expect(
          (await call('POST', `${t2.api}/route`, { key: a.api_key, json: { to: 'c', subject: 's', payload: p } }))
            .status,
        ).toBe(200);
      } finally {
        await t2.close();
      }
    });
  });

  describe('stored payloads are exact', () => {
    it.each([
      ['a __proto__ key', '{"type":"request","message":"m","__proto__":{"x":1}}'],
      ['a lone surrogate', '{"type":"request","message":"a\\ud800b"}'],
      ['integer-like keys and nulls', '{"type":"request","message":"m","context":{"10":1,"9":null}}'],
    ])('a signed payload with %s is listed byte-identical and still verifies', async (_label, payloadJson) => {
      const payload = JSON.parse(payloadJson) as Record<string, unknown>;
      const sig = signMessage(alice.keys.privateKey, {
        from: alice.address,
        to: bob.address,
        subject: 'exact',
        payload,
      });
      const raw = `{"to":"${bob.address}","subject":"exact","signature":"${sig}","payload":${payloadJson}}`;
      const r = await call('POST', `${t.api}/route`, {
        key: alice.api_key,
        raw,
        headers: { 'Content-Type': 'application/json' },
      });
      expect(r.status).toBe(200);
      const item = (await pending(bob)).messages.find((m: { id: string }) => m.id === r.body.id);
      expect(payloadHash(item.payload)).toBe(payloadHash(payload));
      expect(Object.keys(item.payload)).toEqual(Object.keys(payload));
      const data = canonicalString({ ...item.envelope, payload_hash: payloadHash(item.payload) });
      expect(
        verify(null, Buffer.from(data), alice.keys.publicKey, Buffer.from(item.envelope.signature, 'base64')),
      ).toBe(true);
    });
  });

  describe('message ids of others reveal nothing', () => {
    it('does not inherit the thread of a message the sender never saw', async () => {
      const secret = await route(t.api, bob, {
        to: eve.address,
        subject: 's',
        thread_id: 'msg_1_secretthread',
        payload: { type: 'notification', message: 'x' },
      });
      expect(secret.body.thread_id).toBe('msg_1_secretthread');
      const probe = await route(t.api, alice, {
        to: 'alice',
        subject: 'p',
        in_reply_to: secret.body.id,
        payload: { type: 'notification', message: 'x' },
      });
      expect(probe.status).toBe(200);
      expect(probe.body.thread_id).toBe(secret.body.id);
    });

    it('does inherit it for the recipient and the sender of the replied-to message', async () => {
      const first = await route(t.api, alice, {
        to: 'bob',
        subject: 'q',
        thread_id: 'msg_2_thread',
        payload: { type: 'request', message: 'q' },
      });
      const byRecipient = await route(t.api, bob, {
        to: 'alice',
        subject: 'a',
        in_reply_to: first.body.id,
        payload: { type: 'response', message: 'a' },
      });
      expect(byRecipient.body.thread_id).toBe('msg_2_thread');
      const bySender = await route(t.api, alice, {
        to: 'bob',
        subject: 'f',
        in_reply_to: first.body.id,
        payload: { type: 'request', message: 'f' },
      });
      expect(bySender.body.thread_id).toBe('msg_2_thread');
    });
  });
});
