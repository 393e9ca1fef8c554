// The directory and the shared records in cluster mode, against a real nats-server: two
// NatsDirectory/NatsRecords "nodes" (each its own NATS connection) on one JetStream. What one node
// writes the other finds; unique names, keys and spent ids hold across nodes (compare-and-set);
// revocations and agent changes reach the other node as events; a fresh node rebuilds it all.
//
// Cross-node barrier without sleeping: a KV bucket's watch applies changes in stream order, so
// once a node's own write to a bucket resolved (it waits for its mirror to apply it), every write
// acknowledged earlier in that bucket, by any node, is in its mirror too.

import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { AmpError } from '../../proto/index.js';
import { loadConfig } from '../../src/config/schema.js';
import { Agents } from '../../src/relay/agents.js';
import type { RelayContext } from '../../src/relay/context.js';
import type { Sessions } from '../../src/relay/sessions.js';
import { type NatsDoor, openNats } from '../../src/store/nats/door.js';
import { NatsDirectory } from '../../src/store/nats/directory.js';
import { NatsRecords } from '../../src/store/nats/records.js';
import type { AgentRecord, RecordKind } from '../../src/store/types.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { newKeypair } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const IDEM_TTL_MS = 10 * 60_000;

interface Node {
  door: NatsDoor;
  dir: NatsDirectory;
  rec: NatsRecords;
}

let nats: NatsCluster;
const open: Node[] = [];

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
});
afterEach(async () => {
  for (const n of open.splice(0)) await closeNode(n);
});
afterAll(async () => nats?.close());

async function startNode(prefix: string, name: string): Promise<Node> {
  const door = await openNats({ servers: nats.urls, name, replicas: 1, prefix });
  const rec = new NatsRecords(door, { idempotencyTtlMs: IDEM_TTL_MS });
  const dir = new NatsDirectory(door, { tenantHasRecords: (t) => rec.hasPrefix('registrations', `${t}/`) });
  const node = { door, dir, rec };
  open.push(node);
  await Promise.all([dir.open(), rec.open()]);
  return node;
}

async function closeNode(n: Node): Promise<void> {
  n.dir.close();
  n.rec.close();
  await n.door.close();
}

async function twoNodes(tag: string): Promise<[Node, Node, string]> {
  const prefix = uniquePrefix(tag);
  const a = await startNode(prefix, 'node-1');
  const b = await startNode(prefix, 'node-2');
  return [a, b, prefix];
}

function agent(name: string, tenant = 'acme', over: Partial<AgentRecord> = {}): AgentRecord {
  const hex = randomBytes(32).toString('hex');
  return {
    id: `agt_${randomBytes(8).toString('hex')}`,
    name,
    tenant,
    address: `${name}@${tenant}.example.test`,
    short_address: `${name}@${tenant}.example.test`,
    public_key_pem: '-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n',
    public_key_hex: hex,
    // Both forms carry characters a KV key may not hold ('+', '/', ':').
    fingerprint: `SHA256:${randomBytes(32).toString('base64')}`,
    fingerprint_raw: `ed25519:${randomBytes(32).toString('base64')}+/`,
    prefer_websocket: true,
    metadata_json: '{}',
    capabilities: [],
    status: 'active',
    key_hashes: [],
    registered_at: Date.now(),
    ...over,
  };
}

/**
 * The next agent change on `n` for which `pred` holds, or a rejection after `ms` (a bound for a
 * failure, not a requirement: tests that require a latency pass their own).
 */
function agentEvent(
  n: Node,
  pred: (id: string, a: AgentRecord | undefined) => boolean,
  ms = 10_000,
): Promise<AgentRecord | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching agent change within ${ms} ms`));
    }, ms);
    const off = n.dir.onAgentChanged((id, a) => {
      if (!pred(id, a)) return;
      clearTimeout(timer);
      off();
      resolve(a);
    });
  });
}

function codeOf(r: PromiseSettledResult<unknown>): string | undefined {
  if (r.status === 'fulfilled') return undefined;
  return r.reason instanceof AmpError ? r.reason.code : String(r.reason);
}

describe('NatsDirectory across two nodes', () => {
  it('an agent put on node 1 is found on node 2 by id, name and either fingerprint form', async () => {
    const [n1, n2] = await twoNodes('find');
    const a = agent('alice');
    const seen = agentEvent(n2, (id) => id === a.id);
    await n1.dir.putAgent(a);
    // Read-your-writes on the writing node, at once.
    expect(n1.dir.getAgent(a.id)?.name).toBe('alice');
    expect(await seen).toMatchObject({ id: a.id, name: 'alice' });
    expect(n2.dir.getAgent(a.id)).toEqual(a);
    expect(n2.dir.findAgentByName('acme', 'alice')?.id).toBe(a.id);
    expect(n2.dir.findAgentByFingerprint(a.fingerprint)?.id).toBe(a.id);
    expect(n2.dir.findAgentByFingerprint(a.fingerprint_raw)?.id).toBe(a.id);
    expect(n2.dir.findAgentByName('other', 'alice')).toBeUndefined();
    expect(n2.dir.hasTenant('acme')).toBe(true);
    expect(n2.dir.hasTenant('other')).toBe(false);
    expect(n2.dir.listAgentPage('acme', { after: '', limit: 10, search: '' })).toMatchObject({
      total: 1,
      more: false,
      agents: [{ id: a.id }],
    });
  });

  it('two nodes racing to register one name: exactly one wins, the other is refused name_taken', async () => {
    const [n1, n2] = await twoNodes('race');
    for (let round = 0; round < 8; round++) {
      const name = `racer-${round}`;
      const a = agent(name);
      const b = agent(name);
      const results = await Promise.allSettled([n1.dir.putAgent(a), n2.dir.putAgent(b)]);
      const codes = results.map(codeOf);
      expect(codes.filter((c) => c === undefined)).toHaveLength(1);
      expect(codes.filter((c) => c === 'name_taken')).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((loser.reason as AmpError).status).toBe(409);
      const winner = results[0].status === 'fulfilled' ? a : b;
      const loserAgent = winner === a ? b : a;
      // The loser's fingerprint claims were rolled back: its key can be registered under another name.
      await n1.dir.putAgent({ ...loserAgent, name: `${name}-later`, address: `${name}-later@acme.example.test` });
      // Barrier for node 2 (the same buckets), then both agree.
      await n2.dir.putAgent(agent(`${name}-barrier`));
      for (const n of [n1, n2]) {
        expect(n.dir.findAgentByName('acme', name)?.id).toBe(winner.id);
        expect(n.dir.getAgent(loserAgent.id)?.name).toBe(`${name}-later`);
      }
    }
  });

  it('two nodes racing to register one key under two names: one wins, the other is refused key_already_registered', async () => {
    const [n1, n2] = await twoNodes('keyrace');
    const a = agent('k1');
    const b = agent('k2', 'acme', { fingerprint: a.fingerprint, fingerprint_raw: a.fingerprint_raw });
    const results = await Promise.allSettled([n1.dir.putAgent(a), n2.dir.putAgent(b)]);
    expect(results.map(codeOf).sort()).toEqual(['key_already_registered', undefined]);
    // The loser's name claim was rolled back.
    const again = agent(results[0].status === 'fulfilled' ? 'k2' : 'k1');
    await n2.dir.putAgent(again);
    expect(n2.dir.findAgentByName('acme', again.name)?.id).toBe(again.id);
  });

  it('a name already registered is refused on the other node even before its mirror saw it', async () => {
    const [n1, n2] = await twoNodes('taken');
    await n1.dir.putAgent(agent('bob'));
    await expect(n2.dir.putAgent(agent('bob'))).rejects.toMatchObject({ code: 'name_taken', status: 409 });
  });

  it('a suspension written on node 1 reaches node 2 as an event within a second', async () => {
    const [n1, n2] = await twoNodes('suspend');
    const a = agent('sus');
    await n1.dir.putAgent(a);
    const suspended = agentEvent(n2, (id, x) => id === a.id && x?.status === 'suspended', 1000);
    await n1.dir.putAgent({ ...a, status: 'suspended' });
    expect((await suspended)?.status).toBe('suspended');
    expect(n2.dir.getAgent(a.id)?.status).toBe('suspended');
  });

  it('a key revocation is seen on node 2 within a second, by either fingerprint form', async () => {
    const [n1, n2] = await twoNodes('revoke');
    const a = agent('rev');
    const seen = new Promise<void>((resolve, reject) => {
      const got = new Set<string>();
      const timer = setTimeout(() => reject(new Error('revocation not seen on node 2 within 1 s')), 1000);
      n2.dir.onKeyRevoked((fp) => {
        got.add(fp);
        if (got.has(a.fingerprint) && got.has(a.fingerprint_raw)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const entry = {
      fingerprint: a.fingerprint,
      fingerprint_raw: a.fingerprint_raw,
      agent_address: a.address,
      revoked_at: Date.now(),
      reason: 'key_compromise' as const,
    };
    await n1.dir.revokeKey(entry);
    expect(n1.dir.findRevokedKey(a.fingerprint)).toEqual(entry);
    await seen;
    expect(n2.dir.findRevokedKey(a.fingerprint)).toEqual(entry);
    expect(n2.dir.findRevokedKey(a.fingerprint_raw)).toEqual(entry);
  });

  it('API keys: issued on node 1, revoked on node 2, each seen by the other node as an event', async () => {
    const [n1, n2] = await twoNodes('apikeys');
    const hash = randomBytes(32).toString('hex');
    const rec = { agent_id: 'agt_x', created_at: 1, expires_at: null, revoked_at: null, last_used_at: null };
    const onNode2 = new Promise<void>((resolve) => n2.dir.onApiKeyChanged((h) => h === hash && resolve()));
    await n1.dir.putApiKey(hash, rec);
    await onNode2;
    expect(n2.dir.getApiKey(hash)).toEqual(rec);
    const revokedOnNode1 = new Promise<void>((resolve) =>
      n1.dir.onApiKeyChanged((h, r) => h === hash && r?.revoked_at === 5 && resolve()),
    );
    await n2.dir.putApiKey(hash, { ...rec, revoked_at: 5 });
    await revokedOnNode1;
    expect(n1.dir.getApiKey(hash)?.revoked_at).toBe(5);
  });

  it('deleteAgent holds the name on every node until the hold ends; without a hold the name is free', async () => {
    const [n1, n2] = await twoNodes('hold');
    const a = agent('held');
    await n1.dir.putAgent(a);
    const gone = agentEvent(n2, (id, x) => id === a.id && x === undefined);
    const until = Date.now() + 60_000;
    await n1.dir.deleteAgent(a, until);
    await gone;
    expect(n1.dir.nameHeldUntil('acme', 'held', Date.now())).toBe(until);
    expect(n2.dir.getAgent(a.id)).toBeUndefined();
    expect(n2.dir.findAgentByName('acme', 'held')).toBeUndefined();
    expect(n2.dir.findAgentByFingerprint(a.fingerprint)).toBeUndefined();
    // Held: refused on node 2 by the store itself (its claim), whatever its mirror says.
    await expect(n2.dir.putAgent(agent('held'))).rejects.toMatchObject({ code: 'name_taken' });
    // The names bucket is watched apart from the agents bucket: its hold may land a moment later.
    await expect.poll(() => n2.dir.nameHeldUntil('acme', 'held', Date.now()), { timeout: 10_000 }).toBe(until);
    // Its key was released: another agent may use it.
    await n2.dir.putAgent(agent('reuse', 'acme', { fingerprint: a.fingerprint, fingerprint_raw: a.fingerprint_raw }));

    // A hold that has ended is taken over.
    const b = agent('brief');
    await n1.dir.putAgent(b);
    await n1.dir.deleteAgent(b, Date.now() - 1);
    expect(n1.dir.nameHeldUntil('acme', 'brief', Date.now())).toBeUndefined();
    const b2 = agent('brief');
    await n2.dir.putAgent(b2);
    expect(n2.dir.findAgentByName('acme', 'brief')?.id).toBe(b2.id);

    // No hold: free at once.
    const c = agent('free');
    await n1.dir.putAgent(c);
    await n1.dir.deleteAgent(c, 0);
    const c2 = agent('free');
    await n2.dir.putAgent(c2);
    expect(n2.dir.findAgentByName('acme', 'free')?.id).toBe(c2.id);
  });

  it('replaceAgentKey moves the fingerprint index on every node and frees the old key', async () => {
    const [n1, n2] = await twoNodes('rotate');
    const a = agent('rot');
    await n1.dir.putAgent(a);
    const fresh = agent('x');
    const updated = { ...a, fingerprint: fresh.fingerprint, fingerprint_raw: fresh.fingerprint_raw };
    const moved = agentEvent(n2, (id, x) => id === a.id && x?.fingerprint === fresh.fingerprint);
    await n1.dir.replaceAgentKey(a, updated);
    await moved;
    expect(n2.dir.findAgentByFingerprint(fresh.fingerprint)?.id).toBe(a.id);
    expect(n2.dir.findAgentByFingerprint(fresh.fingerprint_raw)?.id).toBe(a.id);
    expect(n2.dir.findAgentByFingerprint(a.fingerprint)).toBeUndefined();
    await n2.dir.putAgent(agent('old-key', 'acme', { fingerprint: a.fingerprint, fingerprint_raw: a.fingerprint_raw }));
  });
});

describe('register (src/relay/agents.ts) on two nodes', () => {
  /** The relay's registration path over one node's directory (no server: only what register uses). */
  function agentsOn(n: Node): Agents {
    const ctx = { config: loadConfig({ env: {} }), logger: pino({ level: 'silent' }) } as unknown as RelayContext;
    const sessions = { closeAgent: () => {}, isOnline: () => false } as unknown as Sessions;
    return new Agents(ctx, n.dir, sessions, undefined as never);
  }

  it('racing registrations of one name: one 201, one 409 name_taken with suggestions (as in LMDB mode)', async () => {
    const [n1, n2] = await twoNodes('register');
    const [r1, r2] = [agentsOn(n1), agentsOn(n2)];
    for (let round = 0; round < 5; round++) {
      const body = () => ({ name: `reg-${round}`, tenant: 'acme', public_key: newKeypair().publicPem });
      const results = await Promise.allSettled([
        r1.register(body(), 'localhost', 'http'),
        r2.register(body(), 'localhost', 'http'),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      expect((won[0] as PromiseFulfilledResult<{ status: number }>).value.status).toBe(201);
      const lost = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as AmpError;
      expect(lost).toBeInstanceOf(AmpError);
      expect(lost).toMatchObject({ code: 'name_taken', status: 409, field: 'name' });
      expect(lost.suggestions?.length).toBeGreaterThan(0);
    }
  });
});

describe('NatsRecords across two nodes', () => {
  it('records come back in key order on both nodes, whichever node wrote them', async () => {
    const [n1, n2] = await twoNodes('records');
    const put = (n: Node, key: string) => n.rec.putRecord('registrations', key, { key });
    await Promise.all([put(n1, 'acme/003'), put(n1, 'acme/001'), put(n1, 'beta/001')]);
    await Promise.all([put(n2, 'acme/002'), put(n2, 'acme/0025'), put(n2, 'acme!/zz')]);
    await put(n1, 'acme/000'); // after node 2's writes: node 1 has them all
    await put(n2, 'zeta/barrier'); // and node 2 has node 1's last one
    const want = ['acme/000', 'acme/001', 'acme/002', 'acme/0025', 'acme/003'];
    for (const n of [n1, n2]) {
      expect(n.rec.recordsWithPrefix<{ key: string }>('registrations', 'acme/').map((r) => r.key)).toEqual(want);
      expect(n.rec.getRecord('registrations', 'beta/001')).toEqual({ key: 'beta/001' });
      expect(n.rec.getRecord('admin_actions', 'beta/001')).toBeUndefined();
      expect(n.dir.hasTenant('beta')).toBe(true); // registrations alone make a tenant
    }
    await n1.rec.settled();
  });

  it('spendOnce: of many spends of one key across two nodes exactly one wins', async () => {
    const [n1, n2] = await twoNodes('spend');
    for (const kind of ['console_spent', 'audit'] as RecordKind[]) {
      const key = kind === 'audit' ? `acme/${'1'.padStart(15, '0')}/spent` : `jti-${kind}`;
      const spends = [n1, n2, n1, n2, n1, n2].map((n) => n.rec.spendOnce(kind, key, { exp: 4_000_000_000 }));
      const won = await Promise.all(spends);
      expect(won.filter(Boolean)).toHaveLength(1);
      expect(await n2.rec.spendOnce(kind, key, { exp: 1 })).toBe(false);
    }
  });

  it('the audit trail (a stream) reads in key order on both nodes', async () => {
    const [n1, n2] = await twoNodes('audit');
    const key = (ms: number, id: string) => `acme/${String(ms).padStart(15, '0')}/${id}`;
    await n1.rec.putRecord('audit', key(300, 'c'), { id: 'c' });
    await n2.rec.putRecord('audit', key(100, 'a'), { id: 'a' });
    await n1.rec.putRecord('audit', key(200, 'b'), { id: 'b' });
    await n2.rec.putRecord('audit', key(50, 'z'), { id: 'z' });
    await n1.rec.putRecord('audit', 'other/000000000000001/x', { id: 'x' });
    await n2.rec.putRecord('audit', 'zeta/000000000000001/barrier', { id: 'barrier' });
    for (const n of [n1, n2]) {
      expect(n.rec.recordsWithPrefix<{ id: string }>('audit', 'acme/').map((e) => e.id)).toEqual(['z', 'a', 'b', 'c']);
      expect(n.rec.getRecord('audit', key(200, 'b'))).toEqual({ id: 'b' });
    }
  });

  it('idempotency keys and metadata are shared', async () => {
    const [n1, n2] = await twoNodes('idem');
    const now = Date.now();
    await n1.rec.putIdempotency('agt_s', 'key with spaces/and.dots', {
      digest: 'd1',
      result: { id: 'm1' },
      expiresAt: now + 60_000,
    });
    await n1.rec.putMeta('provider.key', { kid: 'k1' });
    await n2.rec.putIdempotency('agt_s', 'barrier', { digest: 'd', result: {}, expiresAt: now + 60_000 });
    await n2.rec.putMeta('barrier', 1);
    expect(n2.rec.getIdempotency('agt_s', 'key with spaces/and.dots', now)).toEqual({
      digest: 'd1',
      result: { id: 'm1' },
      expiresAt: now + 60_000,
    });
    expect(n2.rec.getIdempotency('agt_s', 'key with spaces/and.dots', now + 60_000)).toBeUndefined();
    expect(n2.rec.getMeta('provider.key')).toEqual({ kid: 'k1' });
  });
});

describe('restart', () => {
  it('a node opened afresh rebuilds its mirror of everything before open() resolves', async () => {
    const [n1, n2, prefix] = await twoNodes('restart');
    const a = agent('stays');
    const b = agent('leaves');
    await Promise.all([n1.dir.putAgent(a), n2.dir.putAgent(b)]);
    await n1.dir.deleteAgent(b, Date.now() + 60_000);
    await n1.dir.putAgent({ ...a, status: 'suspended' });
    await n1.dir.revokeKey({
      fingerprint: b.fingerprint,
      fingerprint_raw: b.fingerprint_raw,
      agent_address: b.address,
      revoked_at: Date.now(),
      reason: 'agent_deregistered',
    });
    await n1.dir.putApiKey('h1', {
      agent_id: a.id,
      created_at: 1,
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
    });
    await n2.rec.putRecord('registrations', 'acme/r2', { r: 2 });
    await n1.rec.putRecord('registrations', 'acme/r1', { r: 1 });
    await n1.rec.putRecord('audit', 'acme/000000000000002/e2', { e: 2 });
    await n2.rec.putRecord('audit', 'acme/000000000000001/e1', { e: 1 });
    await n1.rec.putMeta('m', 'v');
    // Enough that loading takes several pulls of the ordered consumer.
    const bulk = Array.from({ length: 3000 }, (_, i) => `bulk/${String(i).padStart(5, '0')}`);
    await Promise.all(bulk.map((k) => n2.rec.putRecord('admin_actions', k, { k })));
    await n1.rec.putIdempotency('s', 'k', { digest: 'd', result: { ok: true }, expiresAt: Date.now() + 60_000 });
    for (const n of open.splice(0)) await closeNode(n);

    const n3 = await startNode(prefix, 'node-3');
    expect(n3.dir.getAgent(a.id)?.status).toBe('suspended');
    expect(n3.dir.findAgentByName('acme', 'stays')?.id).toBe(a.id);
    expect(n3.dir.getAgent(b.id)).toBeUndefined();
    expect(n3.dir.findAgentByName('acme', 'leaves')).toBeUndefined();
    expect(n3.dir.nameHeldUntil('acme', 'leaves', Date.now())).toBeGreaterThan(Date.now());
    expect(n3.dir.findRevokedKey(b.fingerprint_raw)?.reason).toBe('agent_deregistered');
    expect(n3.dir.getApiKey('h1')?.agent_id).toBe(a.id);
    expect(n3.dir.listAgentPage('acme', { after: '', limit: 10, search: '' }).agents.map((x) => x.id)).toEqual([a.id]);
    expect(n3.rec.recordsWithPrefix('registrations', 'acme/')).toEqual([{ r: 1 }, { r: 2 }]);
    expect(n3.rec.recordsWithPrefix('audit', 'acme/')).toEqual([{ e: 1 }, { e: 2 }]);
    expect(n3.rec.getMeta('m')).toBe('v');
    expect(n3.rec.recordsWithPrefix<{ k: string }>('admin_actions', 'bulk/').map((r) => r.k)).toEqual(bulk);
    expect(n3.rec.getIdempotency('s', 'k', Date.now())?.result).toEqual({ ok: true });
    // Claims survive too: the held name and the live name are still refused.
    await expect(n3.dir.putAgent(agent('leaves'))).rejects.toMatchObject({ code: 'name_taken' });
    await expect(n3.dir.putAgent(agent('stays'))).rejects.toMatchObject({ code: 'name_taken' });
  });
});

describe('NATS lost and back', () => {
  it('writes answer 503 store_unavailable while NATS is down; after it returns, writes and watches resume', async () => {
    const [n1, n2] = await twoNodes('outage');
    const before = agent('before');
    await n1.dir.putAgent(before);
    const back = (n: Node) =>
      new Promise<void>((resolve) => {
        const off = n.door.onStatus((s) => {
          if (s === 'connected') {
            off();
            resolve();
          }
        });
      });
    const reconnected = Promise.all([back(n1), back(n2)]);
    await nats.servers[0].stop();
    await Promise.all([
      expect(n1.dir.putAgent(agent('during'))).rejects.toMatchObject({ code: 'store_unavailable', status: 503 }),
      expect(n1.rec.putRecord('registrations', 'acme/x', {})).rejects.toMatchObject({ code: 'store_unavailable' }),
      expect(n2.rec.spendOnce('console_spent', 'jti', {})).rejects.toMatchObject({ code: 'store_unavailable' }),
    ]);
    // Reads go on from the mirror.
    expect(n1.dir.findAgentByName('acme', 'before')?.id).toBe(before.id);
    await nats.servers[0].restart();
    await reconnected;
    const after = agent('after');
    const seen = agentEvent(n2, (id) => id === after.id, 20_000);
    await n1.dir.putAgent(after);
    await seen;
    expect(n2.dir.findAgentByName('acme', 'after')?.id).toBe(after.id);
  }, 60_000);
});
