// Attachments (spec §22) against the real server without antivirus: declare → PUT → confirm →
// `basic_clean` → a message carries it → the recipient downloads it (API key, or the signed url
// with no key; Range, ETag), and every refusal: digests, size lies, used and expired upload URLs,
// path characters, another agent's ids, too many or too large, pending/used attachments.

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declare, init, put, settled, sha256, signedUploadQuery, uploadConfirmed } from '../helpers/attachments.js';
import {
  call,
  register,
  route,
  startTestServer,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';

let t: TestServer;
let alice: Registered;
let bob: Registered;
let eve: Registered;

const TEXT = Buffer.from('Quarterly numbers attached.\nRevenue: 42\n');

function blobPath(digest: string): string {
  const hex = digest.slice(7);
  return join(t.dataDir, 'attachments', 'sha256', hex.slice(0, 2), hex);
}

function tmpFiles(): string[] {
  return readdirSync(join(t.dataDir, 'attachments', 'tmp'));
}

const msg = (to: string, attachments: unknown[], subject = 'with a file') => ({
  to,
  subject,
  payload: { type: 'notification', message: 'see attached', attachments },
});

function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const e = err as { code?: number } | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  t = await startTestServer();
  alice = await register(t.api, 'alice', 'acme');
  bob = await register(t.api, 'bob', 'acme');
  eve = await register(t.api, 'eve', 'acme');
});
afterAll(async () => {
  await t?.close();
});

describe('discovery', () => {
  it('advertises the capability and the limits; no antivirus configured', async () => {
    const info = await call('GET', `${t.api}/info`);
    expect(info.body.capabilities).toContain('attachments');
    expect(info.body.attachment_limits).toEqual({
      max_attachment_size: 26214400,
      max_total_attachment_size: 104857600,
      max_attachments_per_message: 10,
      direct_upload: false,
      av_scanning: false,
    });
    const wk = await call('GET', `${t.url}/.well-known/agent-messaging.json`);
    expect(wk.body.capabilities).toContain('attachments');
  });
});

describe('the whole flow', () => {
  let id: string;
  let status: any;
  let delivered: any;

  it('declare answers 201 with a signed single-use upload URL', async () => {
    const r = await init(t.api, alice, declare(TEXT, 'q3 report.txt'));
    expect(r.status).toBe(201);
    expect(r.body.attachment_id).toMatch(/^att_[0-9]+_[0-9a-f]{16}$/);
    expect(r.body.attachment_id).toMatch(/^att[_-][0-9]+[_-][a-zA-Z0-9]+$/); // the reference CLI adopts it
    expect(r.body).toMatchObject({ upload_method: 'PUT', expires_in: 3600 });
    expect(r.body.upload_url).toMatch(
      new RegExp(`/api/v1/attachments/${r.body.attachment_id}/content\\?exp=\\d+&sig=`),
    );
    id = r.body.attachment_id;
    const before = await call('GET', `${t.api}/attachments/${id}`, { key: alice.api_key });
    expect(before.body.scan_status).toBe('pending');
    expect(before.body.url).toBeUndefined();
    const early = await call('POST', `${t.api}/attachments/${id}/confirm`, { key: alice.api_key });
    expect(early.status).toBe(409);
    expect(early.body.error).toBe('upload_incomplete');
    const p = await put(r.body.upload_url, TEXT);
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ attachment_id: id, size: TEXT.length, digest: sha256(TEXT) });
    expect(readFileSync(blobPath(sha256(TEXT)))).toEqual(TEXT);
    expect(tmpFiles()).toEqual([]);
  });

  it('confirm starts the scan; a text file without antivirus is basic_clean with a url', async () => {
    const c = await call('POST', `${t.api}/attachments/${id}/confirm`, { key: alice.api_key });
    expect(c.status).toBe(200);
    expect(c.body.attachment_id).toBe(id);
    expect(['pending', 'basic_clean']).toContain(c.body.scan_status);
    status = await settled(t.api, alice, id);
    expect(status).toMatchObject({
      attachment_id: id,
      filename: 'q3_report.txt',
      content_type: 'text/plain',
      size: TEXT.length,
      digest: sha256(TEXT),
      scan_status: 'basic_clean',
    });
    expect(status.url).toMatch(new RegExp(`^${t.url}/api/v1/attachments/${id}/file\\?sig=`)); // from the request Host
  });

  it('a message carries it: the payload as sent, the provider record beside it', async () => {
    const entry = {
      id,
      filename: status.filename,
      content_type: 'text/plain',
      size: TEXT.length,
      digest: sha256(TEXT),
      url: status.url,
    };
    const r = await route(t.api, alice, msg('bob', [entry]));
    expect(r.status).toBe(200);
    expect(r.body.warnings).toBeUndefined();
    const pending = await call('GET', `${t.api}/messages/pending`, { key: bob.api_key });
    delivered = pending.body.messages.find((m: any) => m.id === r.body.id);
    expect(delivered.payload.attachments).toEqual([entry]);
    expect(delivered.attachments).toHaveLength(1);
    expect(delivered.attachments[0]).toMatchObject({
      id,
      size: TEXT.length,
      digest: sha256(TEXT),
      scan_status: 'basic_clean',
    });
    const again = await route(t.api, alice, msg('bob', [entry], 'again'));
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('attachment_already_used');
  });

  it('the recipient downloads with its API key: 200, exact bytes, the headers curl -C - needs', async () => {
    const res = await fetch(`${t.api}/attachments/${id}/download`, {
      headers: { Authorization: `Bearer ${bob.api_key}` },
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(TEXT);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(res.headers.get('content-length')).toBe(String(TEXT.length));
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="q3_report.txt"');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toBe(`"sha256-${sha256(TEXT).slice(7)}"`);
    const status = await call('GET', `${t.api}/attachments/${id}`, { key: bob.api_key });
    expect(status.body.scan_status).toBe('basic_clean');
  });

  it('the url answers 200 with no key and no redirect; Range, If-None-Match, If-Range', async () => {
    const url = delivered.attachments[0].url;
    const plain = await fetch(url, { redirect: 'manual' });
    expect(plain.status).toBe(200);
    expect(Buffer.from(await plain.arrayBuffer())).toEqual(TEXT);
    const part = await fetch(url, { headers: { Range: 'bytes=5-14' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 5-14/${TEXT.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(TEXT.subarray(5, 15));
    const tail = await fetch(url, { headers: { Range: 'bytes=-4' } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(TEXT.subarray(TEXT.length - 4));
    const past = await fetch(url, { headers: { Range: `bytes=${TEXT.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${TEXT.length}`);
    const etag = plain.headers.get('etag') as string;
    const same = await fetch(url, { headers: { 'If-None-Match': etag } });
    expect(same.status).toBe(304);
    const stale = await fetch(url, { headers: { Range: 'bytes=0-3', 'If-Range': '"other"' } });
    expect(stale.status).toBe(200);
    const forged = await fetch(url.replace(/sig=.*/, 'sig=AAAA'));
    expect(forged.status).toBe(404);
  });

  it('curl -C - resumes a partial download to the exact bytes (plain curl, no -L)', async () => {
    const dir = tempDir('amp-att-curl-');
    const out = join(dir, 'file.txt');
    writeFileSync(out, TEXT.subarray(0, 10));
    const r = await curl(['-s', '-w', '%{http_code}', '-C', '-', '-o', out, delivered.attachments[0].url]);
    expect(r.stdout).toBe('206');
    expect(readFileSync(out)).toEqual(TEXT);
  });

  it('/metrics shows the bytes on disk and the attachments by status', async () => {
    const text = (await call('GET', `${t.url}/metrics`)).body as string;
    const bytes = Number(/^amp_attachment_bytes (\d+)$/m.exec(text)?.[1]);
    expect(bytes).toBeGreaterThanOrEqual(TEXT.length);
    expect(text).toMatch(/^amp_attachments\{scan_status="basic_clean"\} [1-9]/m);
  });

  it('another agent sees nothing of it', async () => {
    for (const [m, path] of [
      ['GET', ''],
      ['GET', '/download'],
      ['POST', '/confirm'],
    ] as const) {
      const r = await call(m, `${t.api}/attachments/${id}${path}`, { key: eve.api_key });
      expect(r.status).toBe(404);
      expect(r.body.error).toBe('attachment_not_found');
    }
  });
});

describe('uploads refused, nothing stored', () => {
  it('upload init: over 25 MiB 413, another digest algorithm 422, missing fields 400', async () => {
    const big = await init(t.api, alice, {
      filename: 'a',
      content_type: 'text/plain',
      size: 26214401,
      digest: sha256('x'),
    });
    expect(big.status).toBe(413);
    expect(big.body.error).toBe('attachment_too_large');
    const md5 = await init(t.api, alice, {
      filename: 'a',
      content_type: 'text/plain',
      size: 1,
      digest: `md5:${'0'.repeat(32)}`,
    });
    expect(md5.status).toBe(422);
    expect(md5.body.error).toBe('invalid_digest_algorithm');
    const missing = await call('POST', `${t.api}/attachments/upload`, { key: alice.api_key, json: { filename: 'a' } });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('missing_field');
    const badType = await init(t.api, alice, {
      filename: 'a',
      content_type: 'not a type',
      size: 1,
      digest: sha256('x'),
    });
    expect(badType.status).toBe(400);
    const noKey = await call('POST', `${t.api}/attachments/upload`, { json: declare(TEXT) });
    expect(noKey.status).toBe(401);
  });

  it('bytes with another digest: 422, no file left', async () => {
    const other = Buffer.from('Quarterly numbers attached.\nRevenue: 43\n');
    const r = await init(t.api, alice, declare(TEXT));
    const p = await put(r.body.upload_url, other);
    expect(p.status).toBe(422);
    expect(p.body.error).toBe('upload_digest_mismatch');
    expect(existsSync(blobPath(sha256(other)))).toBe(false);
    expect(tmpFiles()).toEqual([]);
    // The URL was not used up by a failed upload: the right bytes still go.
    expect((await put(r.body.upload_url, TEXT)).status).toBe(200);
  });

  it('a size lie: declared small, a large body is refused while streaming (Content-Length or chunked)', async () => {
    const small = Buffer.from('tiny');
    const r = await init(t.api, alice, declare(small, 'tiny.txt'));
    const huge = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const announced = await put(r.body.upload_url, huge);
    expect(announced.status).toBe(422);
    expect(announced.body.error).toBe('upload_size_mismatch');
    // Chunked: no Content-Length, the server counts as the bytes come.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 32) return controller.close();
        sent++;
        controller.enqueue(new Uint8Array(1024 * 1024).fill(0x62));
      },
    });
    const chunked = await fetch(r.body.upload_url, {
      method: 'PUT',
      body: stream,
      headers: { 'Content-Type': 'text/plain' },
      duplex: 'half',
    } as RequestInit).catch((e: unknown) => e as Error);
    if (chunked instanceof Response) {
      expect(chunked.status).toBe(422);
      expect(((await chunked.json()) as any).error).toBe('upload_size_mismatch');
    }
    expect(sent).toBeLessThan(32); // refused before the whole body was sent
    expect(tmpFiles()).toEqual([]);
    expect(existsSync(blobPath(sha256(small)))).toBe(false);
  });

  it('a second PUT to a used URL 409; a forged or expired URL 403/410', async () => {
    const bytes = Buffer.from('once only');
    const r = await init(t.api, alice, declare(bytes));
    expect((await put(r.body.upload_url, bytes)).status).toBe(200);
    const second = await put(r.body.upload_url, bytes);
    expect(second.status).toBe(409);
    expect(second.body.error).toBe('upload_already_used');
    const id = r.body.attachment_id;
    const base = `${t.api}/attachments/${id}/content`;
    const forged = await put(`${base}?exp=9999999999&sig=AAAA`, bytes);
    expect(forged.status).toBe(403);
    expect(forged.body.error).toBe('upload_url_invalid');
    const r2 = await init(t.api, alice, declare(bytes));
    const expired = await put(
      `${t.api}/attachments/${r2.body.attachment_id}/content?${signedUploadQuery(t.dataDir, r2.body.attachment_id, Math.floor(Date.now() / 1000) - 1)}`,
      bytes,
    );
    expect(expired.status).toBe(410);
    expect(expired.body.error).toBe('upload_url_expired');
  });

  it('path characters in ids and filenames', async () => {
    for (const bad of ['..%2F..%2Fetc%2Fpasswd', 'att_1_..', '%2e%2e', 'att_1_0123456789abcdef%2F..']) {
      const s = await call('GET', `${t.api}/attachments/${bad}`, { key: alice.api_key });
      expect([404]).toContain(s.status);
      const c = await call('POST', `${t.api}/attachments/${bad}/confirm`, { key: alice.api_key });
      expect(c.status).toBe(404);
    }
    const bytes = Buffer.from('name test');
    const r = await init(t.api, alice, declare(bytes, '../../etc/pass"wd\r\nX-Evil: 1'));
    expect(r.status).toBe(201);
    expect(r.body.filename).toMatch(/^[a-zA-Z0-9._-]+$/);
    const hidden = await init(t.api, alice, declare(bytes, '..'));
    expect(hidden.body.filename).toBe('attachment');
  });
});

describe('what a message may carry', () => {
  it('another agent’s attachment 404, unconfirmed 409 pending, 11 attachments 400, a digest that differs 422', async () => {
    const mine = await uploadConfirmed(t.api, alice, Buffer.from('alice only'));
    await settled(t.api, alice, mine);
    const stolen = await route(t.api, eve, msg('bob', [{ id: mine }]));
    expect(stolen.status).toBe(404);
    expect(stolen.body.error).toBe('attachment_not_found');
    const unknown = await route(t.api, alice, msg('bob', [{ id: 'att_1_0123456789abcdef' }]));
    expect(unknown.status).toBe(404);

    const raw = Buffer.from('not confirmed');
    const i = await init(t.api, alice, declare(raw));
    await put(i.body.upload_url, raw);
    const pending = await route(t.api, alice, msg('bob', [{ id: i.body.attachment_id }]));
    expect(pending.status).toBe(409);
    expect(pending.body.error).toBe('attachment_pending');

    const eleven = Array.from({ length: 11 }, () => ({ id: mine }));
    const many = await route(t.api, alice, msg('bob', eleven));
    expect(many.status).toBe(400);
    expect(many.body.error).toBe('too_many_attachments');

    const wrong = await route(t.api, alice, msg('bob', [{ id: mine, digest: sha256('something else') }]));
    expect(wrong.status).toBe(422);
    expect(wrong.body.error).toBe('invalid_field');
    const twice = await route(t.api, alice, msg('bob', [{ id: mine }, { id: mine }]));
    expect(twice.status).toBe(409);
    expect((await route(t.api, alice, msg('bob', [{ id: mine }]))).status).toBe(200);
  });

  it('over 100 MiB in one message: 413 (five 25 MiB files, one file on disk)', async () => {
    const big = Buffer.alloc(25 * 1024 * 1024, 7);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(await uploadConfirmed(t.api, alice, big, `part${i}.bin`, 'application/octet-stream'));
    for (const id of ids) expect((await settled(t.api, alice, id)).scan_status).toBe('basic_clean');
    const r = await route(
      t.api,
      alice,
      msg(
        'bob',
        ids.map((id) => ({ id })),
      ),
    );
    expect(r.status).toBe(413);
    expect(r.body.error).toBe('attachments_too_large');
    const four = await route(
      t.api,
      alice,
      msg(
        'bob',
        ids.slice(0, 4).map((id) => ({ id })),
      ),
    );
    expect(four.status).toBe(200);
  });

  it('payload.attachments that is not an array of objects: 400', async () => {
    expect((await route(t.api, alice, msg('bob', 'att_1' as unknown as unknown[]))).status).toBe(400);
    const r = await route(t.api, alice, {
      to: 'bob',
      subject: 's',
      payload: { type: 't', message: '', attachments: [42] },
    });
    expect(r.status).toBe(400);
  });
});
