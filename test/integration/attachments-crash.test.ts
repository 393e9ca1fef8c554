// Attachments across crashes, restarts and the sweeper (from an independent review): files that
// vanished, kill -9 during uploads (no file left that no record holds), SIGTERM as an upload
// completes, the sweeper racing a confirm or a route claim (the service on a real store and files,
// its clock set forward), a hung clamd at shutdown, the admin list's limit. "regression:" marks a
// defect the review found.

import { existsSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { settled, uploadConfirmed, declare, init, put, sha256 } from '../helpers/attachments.js';
import { call, register, startTestServer, tempDir, type TestServer, spawnServer } from '../helpers/server.js';
import { randomBytes } from 'node:crypto';
import { LmdbStore } from '../../src/store/lmdb.js';
import http from 'node:http';
import type { AgentRecord } from '../../src/store/types.js';
import net from 'node:net';
import { issuerOf, mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { AttachmentGate } from '../../src/attachments/gate.js';
import { openAttachmentService, uploadDirect } from '../helpers/attachment-service.js';

const blobPath = (dataDir: string, digest: string) =>
  join(dataDir, 'attachments', 'sha256', digest.slice(7, 9), digest.slice(7));

let servers: TestServer[] = [];
let dirs: string[] = [];
afterEach(async () => {
  for (const s of servers) await s.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  servers = [];
  dirs = [];
});

async function metricBytes(t: TestServer): Promise<number> {
  const m = await call('GET', `${t.url}/metrics`);
  const line = String(m.body)
    .split('\n')
    .find((l) => l.startsWith('amp_attachment_bytes '));
  return Number(line?.split(' ')[1]);
}

describe('files that vanished', () => {
  it('a clean attachment whose file vanished: download answers a 4xx JSON error, not a dropped connection', async () => {
    const t = await startTestServer();
    servers.push(t);
    const alice = await register(t.api, 'alice', 'acme');
    const bytes = Buffer.from('hello vanished file\n');
    const id = await uploadConfirmed(t.api, alice, bytes);
    const s = await settled(t.api, alice, id);
    expect(s.scan_status).toBe('basic_clean');
    rmSync(blobPath(t.dataDir, s.digest));
    let observed: string;
    try {
      const r = await call('GET', `${t.api}/attachments/${id}/download`, { key: alice.api_key });
      observed = `${r.status} ${JSON.stringify(r.body)}`;
    } catch (e) {
      observed = `fetch failed: ${(e as Error).cause ?? e}`;
    }
    expect(observed).toMatch(/^4\d\d /);
  });

  it('regression: amp_attachment_bytes after a restart counts a pending file that is gone (settled file_missing)', async () => {
    const dataDir = tempDir('amp-rev4-');
    dirs.push(dataDir);
    // clamd configured but unreachable: the attachment stays pending across the restart.
    const opts = { dataDir, clamdSocket: join(dataDir, 'no-clamd.sock') };
    let t = await startTestServer(opts);
    const alice = await register(t.api, 'alice', 'acme');
    const bytes = Buffer.from('pending across a restart\n');
    const id = await uploadConfirmed(t.api, alice, bytes);
    const s = (await call('GET', `${t.api}/attachments/${id}`, { key: alice.api_key })).body;
    expect(s.scan_status).toBe('pending');
    await t.close();
    rmSync(blobPath(dataDir, s.digest));
    t = await startTestServer(opts);
    servers.push(t);
    const after = (await call('GET', `${t.api}/attachments/${id}`, { key: alice.api_key })).body;
    expect(after.scan_status).toBe('rejected');
    expect(existsSync(blobPath(dataDir, s.digest))).toBe(false);
    expect(await metricBytes(t)).toBe(0);
  });

  it('regression: amp_attachment_bytes after a restart counts a clean file that is gone from disk', async () => {
    const dataDir = tempDir('amp-rev4-');
    dirs.push(dataDir);
    let t = await startTestServer({ dataDir });
    const alice = await register(t.api, 'alice', 'acme');
    const id = await uploadConfirmed(t.api, alice, Buffer.from('clean then lost\n'));
    const s = await settled(t.api, alice, id);
    await t.close();
    rmSync(blobPath(dataDir, s.digest));
    t = await startTestServer({ dataDir });
    servers.push(t);
    expect(await metricBytes(t)).toBe(0);
  });
});

function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'attachments', 'sha256');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => readdirSync(join(root, d)).map((f) => `sha256:${f}`));
}

/** Uploads in a loop (init, PUT, confirm) until the server dies; never throws. */
async function uploadLoop(api: string, who: Awaited<ReturnType<typeof register>>, stop: { dead: boolean }) {
  for (let i = 0; i < 500 && !stop.dead; i++) {
    try {
      const bytes = Buffer.from(`${randomBytes(24 * 1024).toString('hex')}\n`);
      const d = declare(bytes);
      const r = await init(api, who, d);
      if (r.status !== 201) continue;
      await put(r.body.upload_url, bytes);
      await call('POST', `${api}/attachments/${r.body.attachment_id}/confirm`, { key: who.api_key });
    } catch {
      // the server was killed
    }
  }
}

describe('kill -9 during uploads', () => {
  it('regression: after SIGKILL mid-upload, the next start leaves no file under sha256/ that no stored record holds', async () => {
    const dataDir = tempDir('amp-rev4-kill-');
    dirs.push(dataDir);
    const orphans: string[] = [];
    const missing: string[] = [];
    for (let round = 0; round < 6 && orphans.length === 0 && missing.length === 0; round++) {
      const srv = await spawnServer(dataDir);
      const agents = await Promise.all([0, 1, 2, 3].map((k) => register(srv.api, `k${round}x${k}`, 'acme')));
      const stop = { dead: false };
      const loops = agents.map((a) => uploadLoop(srv.api, a, stop));
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 700)));
      srv.proc.kill('SIGKILL');
      await srv.exited;
      stop.dead = true;
      await Promise.all(loops);
      const store = new LmdbStore({ dataDir });
      const recs = [...store.allAttachments()];
      await store.close();
      const storedDigests = new Set(recs.filter((r) => r.stored).map((r) => r.digest));
      for (const f of blobFiles(dataDir)) if (!storedDigests.has(f)) orphans.push(f);
      for (const d of storedDigests) if (!blobFiles(dataDir).includes(d)) missing.push(d);
    }
    // A kill between a file's move into place and its record's commit leaves a file no record
    // holds (orphans may be non-empty here); the next start removes it.
    const { store, svc, close } = await openAttachmentService(dataDir);
    const held = new Set([...store.allAttachments()].filter((r) => r.stored).map((r) => r.digest));
    const unheld = blobFiles(dataDir).filter((f) => !held.has(f));
    await svc.sweep(Date.now() + 8 * 24 * 3600 * 1000, 100_000);
    const left = blobFiles(dataDir);
    await close();
    expect({ missing, unheldAfterOpen: unheld, leftAfterSweep: left }).toEqual({
      missing: [],
      unheldAfterOpen: [],
      leftAfterSweep: [],
    });
  }, 240_000);
});

/** PUT `bytes` to `url`; `onSent` runs once the whole body was handed to the socket. */
function putObserved(url: string, bytes: Buffer, onSent: () => void): Promise<string> {
  return new Promise((resolve) => {
    const r = http.request(url, {
      method: 'PUT',
      headers: { 'Content-Type': 'text/plain', 'Content-Length': String(bytes.length) },
    });
    r.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(`${res.statusCode} ${text}`));
      res.on('error', (e) => resolve(`response error ${e.message}`));
    });
    r.on('error', (e) => resolve(`request error ${e.message}`));
    r.end(bytes, onSent);
  });
}

describe('SIGTERM as an upload completes', () => {
  it('an upload whose bytes are stored during shutdown answers 200, or leaves its upload URL usable', async () => {
    const dataDir = tempDir('amp-rev4-term-');
    dirs.push(dataDir);
    const outcomes: string[] = [];
    for (let round = 0; round < 6; round++) {
      let srv = await spawnServer(dataDir);
      const a = await register(srv.api, `t${round}`, 'acme');
      const bytes = Buffer.from(`${randomBytes(12 * 1024 * 1024).toString('hex')}`.slice(0, 24 * 1024 * 1024));
      const r = await init(srv.api, a, declare(bytes));
      const answer = await putObserved(r.body.upload_url, bytes, () => srv.proc.kill('SIGTERM'));
      await srv.exited;
      srv = await spawnServer(dataDir);
      const st = await call('GET', `${srv.api}/attachments/${r.body.attachment_id}`, { key: a.api_key });
      const again = await put(r.body.upload_url.replace(/^http:\/\/[^/]+/, srv.url), bytes).catch((e) => ({
        status: `fetch ${(e as Error).cause ?? e}`,
        body: { error: '' },
      }));
      await srv.stop();
      const stored = st.body.uploaded_at !== null;
      const line = `PUT: ${answer.slice(0, 60)} | after restart uploaded_at=${st.body.uploaded_at} | PUT again: ${again.status} ${again.body?.error ?? ''}`;
      if (stored && !answer.startsWith('200')) outcomes.push(line);
    }
    expect(outcomes).toEqual([]);
  }, 240_000);
});

describe('the sweeper against a confirm (service on a real store and files, clock set forward)', () => {
  it('regression: a confirm racing the sweep of its expired upload leaves a record that says stored without a file', async () => {
    const dataDir = tempDir('amp-rev4-sweep-');
    dirs.push(dataDir);
    const { store, scans, svc, close } = await openAttachmentService(dataDir);
    const agent = { id: 'agt_owner', tenant: 'acme' } as AgentRecord;
    const bytes = Buffer.from('confirm me as I expire\n');
    const r = { attachment_id: await uploadDirect(svc, agent, bytes) };
    // The sweeper's tick (2 h + 1 s after the PUT) and the owner's confirm arrive together.
    const swept = svc.sweep(Date.now() + 2 * 3600 * 1000 + 1000);
    await svc.confirm(agent, r.attachment_id).catch((e: unknown) => e);
    await swept;
    await scans.idle();
    const rec = store.getAttachment(r.attachment_id);
    const file = existsSync(svc.blobs.pathOf(sha256(bytes)));
    await close();
    // Either the record is gone with its file, or it is kept with its file.
    expect({ record: rec !== undefined && rec.stored === true, file }).not.toEqual({ record: true, file: false });
  });
});

describe('a hung clamd at shutdown, admin list limits', () => {
  it('close() with a scan hung on clamd ends promptly; the scan resumes after the restart', async () => {
    const dataDir = tempDir('amp-rev4-hung-');
    dirs.push(dataDir);
    const sock = join(dataDir, 'hung.sock');
    const conns: net.Socket[] = [];
    const hung = net.createServer((c) => conns.push(c)); // accepts, never answers
    await new Promise<void>((r) => hung.listen(sock, r));
    let t = await startTestServer({ dataDir, clamdSocket: sock });
    const alice = await register(t.api, 'alice', 'acme');
    const id = await uploadConfirmed(t.api, alice, Buffer.from('scan me later\n'));
    for (let i = 0; i < 200 && conns.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(conns.length).toBeGreaterThan(0);
    const t0 = Date.now();
    await t.close();
    const closeMs = Date.now() - t0;
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => hung.close(() => r()));
    expect(closeMs).toBeLessThan(5000);
    t = await startTestServer({ dataDir }); // no clamd now: the resumed scan ends basic_clean
    servers.push(t);
    expect((await settled(t.api, alice, id)).scan_status).toBe('basic_clean');
  });

  it('regression: admin list: limit=0 answers a 400 (or no items), not 100', async () => {
    const t = await startTestServer();
    servers.push(t);
    const alice = await register(t.api, 'alice', 'acme');
    for (const s of ['one\n', 'two\n'])
      await settled(t.api, alice, await uploadConfirmed(t.api, alice, Buffer.from(s)));
    const keys = await SigningKeys.open(t.dataDir, 'RS256');
    const tok = await mintAdminToken(keys, {
      issuer: issuerOf(t.publicBase, 'acme'),
      tenant: 'acme',
      email: 'ops@acme.test',
      scopes: ['amp:admin'],
    });
    const answers: Record<string, string> = {};
    for (const q of ['limit=0', 'limit=abc', 'limit=-1', 'limit=1']) {
      const r = await call('GET', `${t.api}/admin/attachments?${q}`, { headers: { Authorization: `Bearer ${tok}` } });
      answers[q] = `${r.status} ${r.body?.attachments?.length ?? r.body?.error}`;
    }
    expect(answers['limit=1']).toBe('200 1');
    expect(answers['limit=0']).toMatch(/^(400 |200 0$)/);
    expect(answers['limit=abc']).toMatch(/^400 /);
  });
});

describe('the sweeper against a route claim (service on a real store and files, clock set forward)', () => {
  it('regression: a route claiming an attachment as the sweep removes it leaves a routed record whose file is gone', async () => {
    const dataDir = tempDir('amp-rev4-claim-');
    dirs.push(dataDir);
    const { store, scans, svc, close } = await openAttachmentService(dataDir);
    const gate = new AttachmentGate(svc, () => 'http://x/api/v1');
    const agent = { id: 'agt_owner', tenant: 'acme' } as AgentRecord;
    const bytes = Buffer.from('route me as I expire\n');
    const r = { attachment_id: await uploadDirect(svc, agent, bytes) };
    await svc.confirm(agent, r.attachment_id);
    await scans.idle();
    expect(store.getAttachment(r.attachment_id)?.scanStatus).toBe('basic_clean');
    // The sweeper's tick at the attachment's expiry and a route carrying it arrive together.
    const swept = svc.sweep(Date.now() + 2 * 3600 * 1000 + 1000);
    // The sweep decided first: the route is refused (the attachment is gone), or it claims it.
    let refused = '';
    try {
      const carried = gate.check(agent, [{ id: r.attachment_id }], Date.now());
      await carried.claim('msg_1', 'agt_recipient');
    } catch (e) {
      refused = (e as { code?: string }).code ?? String(e);
    }
    await swept;
    if (refused) expect(refused).toBe('attachment_not_found');
    const rec = store.getAttachment(r.attachment_id);
    const file = existsSync(svc.blobs.pathOf(sha256(bytes)));
    await close();
    expect({ record: rec !== undefined && rec.stored === true, file }).not.toEqual({ record: true, file: false });
  });
});
