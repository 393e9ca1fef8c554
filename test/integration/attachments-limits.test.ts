// Limits that keep one agent, or a full disk, from hurting everyone: at most 100 declared-but-unsent
// attachments of at most 256 MiB per agent (429 `attachment_quota_exceeded`; sending frees the
// room), and no upload that would leave less than 64 MiB free on the disk (507, nothing kept):
// a small tmpfs as the data dir, when root may mount one.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declare, init, put, settled, sha256, uploadConfirmed } from '../helpers/attachments.js';
import { register, route, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { exchange, rawRequest } from '../helpers/raw-http.js';

const MIB = 1024 * 1024;

describe('per-agent quota of unsent attachments', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the 101st unsent attachment is 429; sending one frees a place', async () => {
    const carol = await register(t.api, 'carol', 'acme');
    await register(t.api, 'bob', 'acme');
    const first = await uploadConfirmed(t.api, carol, Buffer.from('first'));
    await settled(t.api, carol, first);
    for (let i = 1; i < 100; i++) {
      const r = await init(t.api, carol, declare(Buffer.from(`file ${i}`)));
      expect(r.status).toBe(201);
    }
    const over = await init(t.api, carol, declare(Buffer.from('one too many')));
    expect(over.status).toBe(429);
    expect(over.body.error).toBe('attachment_quota_exceeded');
    expect(over.headers.get('retry-after')).toBe('60');
    const sent = await route(t.api, carol, {
      to: 'bob',
      subject: 's',
      payload: { type: 't', message: '', attachments: [{ id: first }] },
    });
    expect(sent.status).toBe(200);
    expect((await init(t.api, carol, declare(Buffer.from('room again')))).status).toBe(201);
  });

  it('more than 256 MiB declared and unsent is 429', async () => {
    const dave = await register(t.api, 'dave', 'acme');
    const big = { filename: 'big.bin', content_type: 'application/octet-stream', size: 25 * MIB, digest: sha256('x') };
    for (let i = 0; i < 10; i++) expect((await init(t.api, dave, big)).status).toBe(201);
    const over = await init(t.api, dave, big);
    expect(over.status).toBe(429);
    expect(over.body.details).toMatchObject({ bytes: 250 * MIB, limit_bytes: 256 * MIB });
    expect((await init(t.api, dave, { ...big, size: 6 * MIB })).status).toBe(201);
  });
});

describe('a nearly full disk', () => {
  const root = tempDir('amp-att-disk-');
  const mnt = join(root, 'mnt');
  let mounted = '';
  let t: TestServer | undefined;

  beforeAll(async () => {
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=72m', 'tmpfs', mnt], { stdio: 'pipe' });
      mounted = mnt;
      t = await startTestServer({ dataDir: join(mnt, 'data') });
    } catch (e) {
      mounted = '';
      console.warn(`skipped: cannot mount a tmpfs (${String((e as { stderr?: Buffer }).stderr ?? e).trim()})`);
    }
  });
  afterAll(async () => {
    await t?.close();
    if (mounted) execFileSync('umount', [mounted]);
    rmSync(root, { recursive: true, force: true });
  });

  it('an upload that would leave less than 64 MiB free is 507 and leaves nothing', async (ctx) => {
    if (!t) return ctx.skip();
    const erin = await register(t.api, 'erin', 'acme');
    const bytes = Buffer.alloc(20 * MIB, 1);
    const i = await init(t.api, erin, declare(bytes, 'big.bin', 'application/octet-stream'));
    // The server answers 507 before it has read the body and closes the connection: fetch may fail
    // on EPIPE while still sending, so the answer is read from the raw socket (which keeps it).
    const u = new URL(i.body.upload_url);
    const request = rawRequest('PUT', u.pathname + u.search, {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: bytes.toString('latin1'),
    });
    const ex = await exchange(Number(u.port), request, { want: 1, timeoutMs: 20_000 });
    expect(ex.responses[0]?.status, ex.end).toBe(507);
    expect(JSON.parse(ex.responses[0].body).error).toBe('insufficient_storage');
    expect(readdirSync(join(t.dataDir, 'attachments', 'tmp'))).toEqual([]);
    // A small file still fits.
    const small = Buffer.from('small');
    const j = await init(t.api, erin, declare(small));
    expect((await put(j.body.upload_url, small)).status).toBe(200);
  });
});
