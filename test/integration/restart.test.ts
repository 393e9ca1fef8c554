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
    const acked = await call('POST', `${server.api}/messages/pending/ack`, {
      key: bob.api_key,
      json: { ids: ids.slice(0, 5) },
    });
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
    const dup = await call('POST', `${server.api}/register`, {
      json: { name: 'bob', tenant: 'acme', public_key: alice.keys.publicPem },
    });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe('name_taken');
  });
});

describe('shutdown under load', () => {
  it('answers or refuses every request in flight, exits 0, and keeps every message it answered 200', async () => {
    const dataDir = tempDir('amp-drain-');
    let server = await spawnServer(dataDir);
    try {
      const a = await register(server.api, 'a', 't');
      const b = await register(server.api, 'b', 't');
      const ok: string[] = [];
      const statuses = new Set<number | string>();
      let stop = false;
      const MAX_PER_WORKER = 2000;
      const workers = Array.from({ length: 32 }, async () => {
        for (let i = 0; i < MAX_PER_WORKER && !stop; i++) {
          try {
            const r = await call('POST', `${server.api}/route`, {
              key: a.api_key,
              json: { to: 'b', subject: 's', payload: { type: 'notification', message: 'x' } },
            });
            statuses.add(r.status);
            if (r.status === 200) ok.push(r.body.id);
          } catch {
            statuses.add('connection closed');
            return;
          }
        }
      });
      // Stop the server once it has answered a good number of routes.
      const sigterm = (async () => {
        while (ok.length < 200 && statuses.size < 3) await new Promise((r) => setImmediate(r));
        return server.stop('SIGTERM');
      })();
      expect(await sigterm).toBe(0);
      stop = true;
      await Promise.all(workers);
      for (const s of statuses) expect([200, 503, 'connection closed']).toContain(s);

      server = await spawnServer(dataDir, ['--max-queue', '100000']);
      const ids = new Set<string>();
      for (let page = 0; page < 1000; page++) {
        const list = await call('GET', `${server.api}/messages/pending?limit=100`, { key: b.api_key });
        for (const m of list.body.messages) ids.add(m.id);
        if (list.body.remaining === 0) break;
        await call('POST', `${server.api}/messages/pending/ack`, {
          key: b.api_key,
          json: { ids: list.body.messages.map((m: { id: string }) => m.id) },
        });
      }
      expect(ok.length).toBeGreaterThanOrEqual(200);
      for (const id of ok) expect(ids.has(id)).toBe(true);
    } finally {
      await server.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('startup refusals', () => {
  it('exits non-zero with a clear message on a bad configuration', async () => {
    const dataDir = tempDir('amp-badcfg-');
    try {
      await expect(spawnServer(dataDir, [], { AMP_SIGNATURES: 'sometimes' })).rejects.toThrow(
        /AMP_SIGNATURES: signatures must be one of optional, required/,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to run on the pure-JS uWebSockets.js fallback', async () => {
    const dataDir = tempDir('amp-fallback-');
    try {
      await expect(spawnServer(dataDir, [], { UWS_USE_FALLBACK: '1' })).rejects.toThrow(
        /Refusing to start on the fallback/,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
