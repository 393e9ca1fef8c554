// Races in key and agent management. Each test queues requests behind a burst of PATCHes (they
// hold the agent's lock in turn) and asserts an invariant that must hold whichever request wins:
// revocation is final, a deregistered agent stays gone, one key proves one rotation.

import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newKeypair, register, signMessage, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ rateLimits: 'off' });
});
afterAll(() => t.close());

const hold = (key: string) =>
  Array.from({ length: 30 }, (_, i) => call('PATCH', `${t.api}/agents/me`, { key, json: { alias: `a${i}` } }));

describe('key and agent races', () => {
  it('revoke-key is final even when a rotate-key was queued with it', async () => {
    const a = await register(t.api, 'race-revoke', 'acme');
    const patches = hold(a.api_key);
    const revoke = call('DELETE', `${t.api}/auth/revoke-key`, { key: a.api_key });
    const rotate = call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key });
    await Promise.all(patches);
    const [rv, rt] = await Promise.all([revoke, rotate]);
    expect(rv.status).toBe(200);
    const keys = [a.api_key, ...(rt.status === 200 ? [rt.body.api_key as string] : [])];
    for (const k of keys) expect((await call('GET', `${t.api}/agents/me`, { key: k })).status).toBe(401);
  });

  it('a deregistered agent stays gone when PATCH and rotate-key were queued with the DELETE', async () => {
    const a = await register(t.api, 'race-dereg', 'acme');
    const watcher = await register(t.api, 'race-watch', 'acme');
    const patches = hold(a.api_key);
    const del = call('DELETE', `${t.api}/agents/me`, { key: a.api_key });
    const late = [
      call('PATCH', `${t.api}/agents/me`, { key: a.api_key, json: { alias: 'zombie' } }),
      call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key }),
    ];
    await Promise.all(patches);
    expect((await del).status).toBe(200);
    const [, rot] = await Promise.all(late);
    expect(
      (await call('GET', `${t.api}/agents/resolve/race-dereg@acme.aimaestro.local`, { key: watcher.api_key })).status,
    ).toBe(404);
    const listed = await call('GET', `${t.api}/agents?search=race-dereg`, { key: watcher.api_key });
    expect(listed.body.total).toBe(0);
    if (rot.status === 200)
      expect((await call('GET', `${t.api}/agents/me`, { key: rot.body.api_key })).status).toBe(401);
    const to = await call('POST', `${t.api}/route`, {
      key: watcher.api_key,
      json: { to: 'race-dereg', subject: 's', payload: { type: 'notification', message: 'x' } },
    });
    expect(to.status).toBe(404);
  });

  it('two identical keypair rotations: one wins, and the new key is not revoked', async () => {
    const a = await register(t.api, 'race-rot1', 'acme');
    const b = await register(t.api, 'race-rot1-peer', 'acme');
    const next = newKeypair();
    const body = {
      new_public_key: next.publicPem,
      proof: sign(null, Buffer.from(next.publicPem), a.keys.privateKey).toString('base64'),
    };
    const patches = hold(a.api_key);
    const both = [0, 1].map(() => call('POST', `${t.api}/auth/rotate-keys`, { key: a.api_key, json: body }));
    await Promise.all(patches);
    const answers = await Promise.all(both);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 400]);
    const payload = { type: 'notification', message: 'signed with the new key' };
    const signature = signMessage(next.privateKey, { from: a.address, to: b.address, subject: 'k', payload });
    const r = await call('POST', `${t.api}/route`, {
      key: a.api_key,
      json: { to: b.address, subject: 'k', payload, signature },
    });
    expect(r.status).toBe(200);
  });

  it('a key rotated away cannot prove a second, concurrent rotation', async () => {
    const a = await register(t.api, 'race-rot2', 'acme');
    const k1 = newKeypair();
    const k2 = newKeypair();
    const proof = (k: typeof k1) => ({
      new_public_key: k.publicPem,
      proof: sign(null, Buffer.from(k.publicPem), a.keys.privateKey).toString('base64'),
    });
    const patches = hold(a.api_key);
    const both = [k1, k2].map((k) => call('POST', `${t.api}/auth/rotate-keys`, { key: a.api_key, json: proof(k) }));
    await Promise.all(patches);
    const answers = await Promise.all(both);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 403]);
    const winner = answers.find((r) => r.status === 200)!.body.fingerprint;
    expect((await call('GET', `${t.api}/agents/me`, { key: a.api_key })).body.fingerprint).toBe(winner);
  });
});
