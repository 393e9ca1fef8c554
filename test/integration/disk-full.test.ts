// A full disk (issue 13, items 1 and 2): the data dir on a small tmpfs of its own, filled by
// routing. The server (a child process, so "alive" means the process) must answer 507
// `insufficient_storage` with Retry-After, REST and WebSocket alike, report `degraded` on /health
// and 503 on /ready, never count, list or replay a message whose commit failed, recover by itself
// once space is freed, and after a restart hold exactly the messages that got a 2xx.
// Needs root (mount); skipped with a message when a tmpfs cannot be mounted.

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  call,
  type ChildServer,
  newKeypair,
  type Registered,
  register,
  route,
  spawnServer,
  tempDir,
} from '../helpers/server.js';
import { registrationRequestBody } from '../helpers/aid.js';
import { closeAllWs, connectWs, until, type WsClient } from '../helpers/ws.js';

const TMPFS_SIZE = '32m';
/** The store refuses new data below 8 MiB free (src/store/lmdb.ts); a dozen big messages fit above. */
const FLOOR_BYTES = 8 * 1024 * 1024;
const LEFT_FREE_BYTES = FLOOR_BYTES + 320 * 1024;
const BIG = 'x'.repeat(32 * 1024);
const MAX_ATTEMPTS = 400;
/** Routes refused before the disk is freed (none of them may show up later). */
const FAILURES_WANTED = 40;
const READY_TIMEOUT_MS = 10_000;

function tryMount(dir: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    return String((e as { stderr?: Buffer }).stderr ?? e).trim();
  }
}

const root = tempDir('amp-diskfull-');
const mnt = join(root, 'mnt');
mkdirSync(mnt);
const mountError = tryMount(mnt);
if (mountError) console.warn(`disk-full test skipped: cannot mount a tmpfs on ${mnt} (${mountError})`);

const children: ChildServer[] = [];
afterAll(async () => {
  await closeAllWs();
  for (const c of children) await c.stop('SIGKILL');
  if (!mountError) execFileSync('umount', [mnt]);
  rmSync(root, { recursive: true, force: true });
});

async function start(): Promise<ChildServer> {
  const args = ['--rate-limits', 'off'];
  const c = await spawnServer(join(mnt, 'data'), args);
  children.push(c);
  return c;
}

const alive = (c: ChildServer) => c.proc.exitCode === null && c.proc.signalCode === null;

/** Poll /ready until it answers `want` (the store probes once a second). */
async function waitReady(api: string, want: number): Promise<void> {
  const seen = await until(async () => (await call('GET', `${api}/ready`)).status === want, READY_TIMEOUT_MS);
  expect(seen, `/ready never answered ${want}`).toBe(true);
}

interface Tally {
  ok: Map<string, string>; // subject -> id
  failed: string[]; // subjects answered 507
}

/** Route until FAILURES_WANTED routes were refused with 507 (bounded). */
async function fill(api: string, from: Registered, to: string, tally: Tally): Promise<void> {
  for (let i = 0; i < MAX_ATTEMPTS && tally.failed.length < FAILURES_WANTED; i++) {
    const subject = `fill-${i}`;
    const r = await route(api, from, { to, subject, payload: { type: 'notification', message: BIG } });
    if (r.status === 200) {
      tally.ok.set(subject, r.body.id);
      continue;
    }
    expect(r.status, JSON.stringify(r.body)).toBe(507);
    expect(r.body.error).toBe('insufficient_storage');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(r.body.retry_after).toBeGreaterThan(0);
    tally.failed.push(subject);
  }
  expect(tally.failed.length).toBe(FAILURES_WANTED);
}

describe.skipIf(mountError !== undefined)('a full disk (data dir on a small tmpfs)', () => {
  it('answers 507 and /ready 503 without dying, recovers when space is freed, loses no 2xx', async () => {
    let server = await start();
    const { api } = server;
    const alice = await register(api, 'alice');
    const bob = await register(api, 'bob');
    const live: WsClient = await connectWs(server.url.replace('http', 'ws') + '/v1/ws', bob.api_key);

    const fs = statfsSync(mnt);
    const filler = join(mnt, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - LEFT_FREE_BYTES)));

    const tally: Tally = { ok: new Map(), failed: [] };
    await fill(api, alice, bob.address, tally);
    expect(tally.ok.size).toBeGreaterThan(0);
    expect(alive(server)).toBe(true);

    // Readiness and health say so, with the reason.
    expect((await call('GET', `${api}/ready`)).status).toBe(503);
    expect((await call('GET', `${server.url}/v1/ready`)).status).toBe(503);
    const health = await call('GET', `${api}/health`);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('degraded');
    expect(health.body.reason).toMatch(/space/i);

    // A WebSocket route gets the same answer in route.result.
    const ws = await connectWs(server.url.replace('http', 'ws') + '/v1/ws', alice.api_key);
    ws.sendText({
      type: 'route',
      request_id: 'r1',
      data: { to: bob.address, subject: 'ws-full', payload: { type: 'notification', message: BIG } },
    });
    const result = await ws.nextType('route.result', 'r1');
    expect(result.error).toBe('insufficient_storage');
    tally.failed.push('ws-full');

    // Registration is refused the same way; an ack (a removal, it frees space) goes through.
    const carolKey = newKeypair().publicPem;
    const carolBody = { name: 'carol', tenant: 'default', public_key: carolKey, key_algorithm: 'Ed25519' };
    const carol = await call('POST', `${api}/register`, { json: carolBody });
    expect(carol.status).toBe(507);
    expect(carol.body.error).toBe('insufficient_storage');
    const aidRequest = () =>
      call('POST', `${server.url}/default/agent_registrations/request`, {
        headers: { 'X-Api-Key': bob.api_key },
        json: registrationRequestBody(bob),
      });
    const aid = await aidRequest();
    expect(aid.status, JSON.stringify(aid.body)).toBe(507);
    expect(aid.body.error).toBe('insufficient_storage');
    const firstId = [...tally.ok.values()][0]!;
    const ack = await call('DELETE', `${api}/messages/pending/${firstId}`, { key: bob.api_key });
    expect(ack.status).toBe(200);
    const acked = firstId;

    // Nothing that failed is counted: the pending count is the 2xx count.
    const listed = await call('GET', `${api}/messages/pending?limit=1`, { key: bob.api_key });
    expect(listed.body.count + listed.body.remaining).toBe(tally.ok.size - 1);
    expect(alive(server)).toBe(true);

    // Space freed: ready again by itself, routes go through.
    rmSync(filler);
    await waitReady(api, 200);
    expect((await call('GET', `${api}/health`)).body.status).toBe('healthy');
    const after = await route(api, alice, {
      to: bob.address,
      subject: 'after',
      payload: { type: 'notification', message: 'hi' },
    });
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    tally.ok.set('after', after.body.id);
    await live.until(() => live.frames.firstSeen.includes(after.body.id), 'the push of "after"');
    // A registration refused for lack of space left nothing behind: the name is free.
    expect((await call('POST', `${api}/register`, { json: carolBody })).status).toBe(201);
    expect((await aidRequest()).status).toBe(202);

    // Restart on the same dir: every 2xx message is there (unless acked), none that got 507.
    expect(await server.stop()).toBe(0);
    server = await start();
    const again = await connectWs(server.url.replace('http', 'ws') + '/v1/ws', bob.api_key);
    const expected = [...tally.ok].filter(([, id]) => id !== acked);
    expect(again.connected.data.pending_count).toBe(expected.length);
    await again.until(() => again.frames.firstSeen.length === expected.length, 'the replay');
    const replayed = again.frames.of('message.new').map((f) => f.data.envelope.subject);
    expect(new Set(replayed)).toEqual(new Set(expected.map(([subject]) => subject)));
    for (const s of tally.failed) expect(replayed).not.toContain(s);
  });
});
