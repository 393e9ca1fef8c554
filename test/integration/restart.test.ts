// A 2xx from route means the message is committed: it survives SIGTERM and SIGKILL of the server
// process and a restart on the same data dir; after its ack it is gone, also across restarts.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, register, spawnServer, tempDir, type ChildServer, type Registered } from '../helpers/server.js';

describe.each(['SIGTERM', 'SIGKILL'] as const)('restart after %s', (signal) => {
  const dataDir = tempDir('amp-restart-');
  let server: ChildServer;
  let alice: Registered;
  let bob: Registered;

  beforeAll(async () => {
    server = await spawnServer(dataDir);
    alice = await register(server.api, 'alice', 'acme');
    bob = await register(server.api, 'bob', 'acme');
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps routed messages, keys and agents; acked messages stay gone', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call('POST', `${server.api}/route`, {
        key: alice.api_key,
        json: { to: 'bob@acme.aimaestro.local', subject: `n${i}`, payload: { type: 'notification', message: `m${i}` } },
      });
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('queued');
      ids.push(r.body.id);
    }
    // Ack the first five before the crash.
    const acked = await call('POST', `${server.api}/messages/pending/ack`, { key: bob.api_key, json: { ids: ids.slice(0, 5) } });
    expect(acked.body).toEqual({ acknowledged: 5 });

    const code = await server.stop(signal);
    expect(code).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');

    server = await spawnServer(dataDir);
    const list = await call('GET', `${server.api}/messages/pending?limit=100`, { key: bob.api_key });
    expect(list.status).toBe(200);
    expect(list.body.messages.map((m: { id: string }) => m.id)).toEqual(ids.slice(5));
    expect(list.body.messages[0].payload).toEqual({ type: 'notification', message: 'm5' });
    expect(list.body.messages[0].envelope.from).toBe('alice@acme.aimaestro.local');

    // A repeated ack of a message acked before the crash is still recognised.
    const again = await call('DELETE', `${server.api}/messages/pending?id=${ids[0]}`, { key: bob.api_key });
    expect(again.body).toEqual({ acknowledged: true, already_acked: true });

    // Ack one more, crash again: it stays acked, the rest stay queued, in order.
    const one = await call('DELETE', `${server.api}/messages/pending/${ids[5]}`, { key: bob.api_key });
    expect(one.body).toEqual({ acknowledged: true });
    await server.stop(signal);
    server = await spawnServer(dataDir);
    const after = await call('GET', `${server.api}/messages/pending?limit=100`, { key: bob.api_key });
    expect(after.body.messages.map((m: { id: string }) => m.id)).toEqual(ids.slice(6));
    expect(after.body.remaining).toBe(0);

    // Routing keeps working after the restart, and new messages queue after the old ones.
    const r = await call('POST', `${server.api}/route`, {
      key: alice.api_key,
      json: { to: 'bob', subject: 'after restart', payload: { type: 'notification', message: 'x' } },
    });
    expect(r.status).toBe(200);
    const last = await call('GET', `${server.api}/messages/pending?limit=100`, { key: bob.api_key });
    expect(last.body.messages.at(-1).id).toBe(r.body.id);
    expect(last.body.count).toBe(15);
  });

  it('keeps the registered name taken and the provider key stable', async () => {
    const before = await call('GET', `${server.url}/.well-known/agent-messaging.json`);
    await server.stop(signal);
    server = await spawnServer(dataDir);
    const after = await call('GET', `${server.url}/.well-known/agent-messaging.json`);
    expect(after.body.fingerprint).toBe(before.body.fingerprint);
    const dup = await call('POST', `${server.api}/register`, { json: { name: 'bob', tenant: 'acme', public_key: alice.keys.publicPem } });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe('name_taken');
  });
});

describe('startup refusals', () => {
  it('exits non-zero with a clear message on a bad configuration', async () => {
    const dataDir = tempDir('amp-badcfg-');
    try {
      await expect(spawnServer(dataDir, [], { AMP_SIGNATURES: 'sometimes' })).rejects.toThrow(/AMP_SIGNATURES: signatures must be one of optional, required/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to run on the pure-JS uWebSockets.js fallback', async () => {
    const dataDir = tempDir('amp-fallback-');
    try {
      await expect(spawnServer(dataDir, [], { UWS_USE_FALLBACK: '1' })).rejects.toThrow(/Refusing to start on the fallback/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
