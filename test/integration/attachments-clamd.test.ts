// Attachments scanned by a real clamd (Debian's clamav-daemon, one per file, on a temporary socket
// with a one-signature database: the EICAR test string). With clamd: `av_scanning: true`, an EICAR
// file is rejected and its bytes deleted, a clean file is `clean`. With clamd stopped mid-way the
// attachment stays `pending` (the server logs that it deferred the scan, and tries again) and gets
// its verdict once clamd is back, also across a server restart.

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call as fetchCall,
  register,
  route,
  startTestServer,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';
import { settled, sha256, uploadConfirmed } from '../helpers/attachments.js';
import { EICAR, startClamd, type ClamdHandle } from '../helpers/clamd.js';

let clamd: ClamdHandle;
let t: TestServer;
let alice: Registered;
const dataDir = tempDir('amp-att-clamd-');
/** Resolvers waiting for a log record that matches. */
const waiters: Array<{ match: (r: Record<string, any>) => boolean; resolve: () => void }> = [];

function logger() {
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        const rec = JSON.parse(line) as Record<string, any>;
        for (const w of waiters.splice(0)) w.match(rec) ? w.resolve() : waiters.push(w);
      }
      done();
    },
  });
  return pino({ level: 'warn' }, stream);
}

/** Resolves when the server logs that it deferred the scan of `id` (clamd unavailable). */
function deferred(id: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no deferred scan of ${id} within ${timeoutMs} ms`)), timeoutMs);
    waiters.push({
      match: (r) => r.attachment === id && /deferred/.test(String(r.msg)),
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

async function start(): Promise<void> {
  t = await startTestServer({ dataDir, clamdSocket: clamd.socket, logger: logger() });
}

beforeAll(async () => {
  clamd = await startClamd();
  await start();
  alice = await register(t.api, 'alice', 'acme');
  await register(t.api, 'bob', 'acme');
});
afterAll(async () => {
  await t?.close();
  await clamd?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('with clamd', () => {
  it('says av_scanning: true', async () => {
    const info = await fetchCall('GET', `${t.api}/info`);
    expect(info.body.attachment_limits.av_scanning).toBe(true);
  });

  it('an EICAR test file is rejected, its bytes deleted', async () => {
    const bytes = Buffer.from(`${EICAR}\n`);
    const id = await uploadConfirmed(t.api, alice, bytes, 'eicar.txt');
    const s = await settled(t.api, alice, id);
    expect(s.scan_status).toBe('rejected');
    expect(s.scan_reasons.join(' ')).toMatch(/antivirus:Amp\.Test\.EICAR/);
    const digest = sha256(bytes);
    expect(existsSync(join(dataDir, 'attachments', 'sha256', digest.slice(7, 9), digest.slice(7)))).toBe(false);
    const r = await route(t.api, alice, {
      to: 'bob',
      subject: 'x',
      payload: { type: 'notification', message: '', attachments: [{ id }] },
    });
    expect(r.status).toBe(422);
  });

  it('a clean file is clean (not basic_clean)', async () => {
    const id = await uploadConfirmed(t.api, alice, Buffer.from('nothing to see\n'), 'ok.txt');
    expect((await settled(t.api, alice, id)).scan_status).toBe('clean');
  });
});

describe('clamd stopped mid-way', () => {
  it('stays pending while clamd is down, then gets its verdict once clamd is back', async () => {
    await clamd.stop();
    const cleanId = await uploadConfirmed(t.api, alice, Buffer.from('waiting for clamd\n'), 'wait.txt');
    await deferred(cleanId);
    const during = await fetchCall('GET', `${t.api}/attachments/${cleanId}`, { key: alice.api_key });
    expect(during.body.scan_status).toBe('pending');
    expect(during.body.url).toBeUndefined();
    const held = await route(t.api, alice, {
      to: 'bob',
      subject: 'x',
      payload: { type: 'notification', message: '', attachments: [{ id: cleanId }] },
    });
    expect(held.status).toBe(409);
    expect(held.body.error).toBe('attachment_pending');
    const eicarId = await uploadConfirmed(t.api, alice, Buffer.from(`${EICAR} (second)\n`), 'eicar2.txt');
    await deferred(eicarId);
    await clamd.start();
    expect((await settled(t.api, alice, cleanId, 60_000)).scan_status).toBe('clean');
    expect((await settled(t.api, alice, eicarId, 60_000)).scan_status).toBe('rejected');
  });

  it('a scan still pending at shutdown resumes after a restart', async () => {
    await clamd.stop();
    const id = await uploadConfirmed(t.api, alice, Buffer.from('across a restart\n'), 'restart.txt');
    await deferred(id);
    await t.close();
    await clamd.start();
    await start();
    expect((await settled(t.api, alice, id, 60_000)).scan_status).toBe('clean');
  });
});
