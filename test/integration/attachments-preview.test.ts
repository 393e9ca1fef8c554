// GET /v1/admin/attachments/{id}/preview: the operator's safe look at a file, from the real server:
// the first 4 KiB of a text file as a JSON string (markup stays text, control characters go), no
// preview for binary content or a non-text type, and nothing of another tenant's files.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken } from '../helpers/aid.js';
import { settled, uploadConfirmed } from '../helpers/attachments.js';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';

let t: TestServer;
let alice: Registered;
let admin: string;
let otherAdmin: string;

const preview = (id: string, token = admin) =>
  call('GET', `${t.url}/v1/admin/attachments/${id}/preview`, { headers: { Authorization: `Bearer ${token}` } });

async function uploaded(bytes: Buffer, filename: string, type: string): Promise<string> {
  const id = await uploadConfirmed(t.api, alice, bytes, filename, type);
  await settled(t.api, alice, id);
  return id;
}

beforeAll(async () => {
  t = await startTestServer();
  alice = await register(t.api, 'alice', 'acme');
  admin = await adminToken(t, { tenant: 'acme', scopes: ['amp:admin'] });
  otherAdmin = await adminToken(t, { tenant: 'other', scopes: ['amp:admin'] });
});
afterAll(async () => {
  await t?.close();
});

describe('GET /v1/admin/attachments/{id}/preview', () => {
  it('returns a text file as a JSON string: markup as text, control characters but \\n and \\t removed', async () => {
    const text = 'Hello <script>alert(1)</script> "><img src=x onerror=alert(2)>\r\n\tindented\x07\x1b[31mred\x00';
    const id = await uploaded(Buffer.from(text.replace('\x00', '')), 'notes.txt', 'text/plain');
    const r = await preview(id);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body).toEqual({
      previewable: true,
      text: 'Hello <script>alert(1)</script> "><img src=x onerror=alert(2)>\n\tindented[31mred',
      truncated: false,
      reason: null,
    });
  });

  it('reads at most 4 KiB, and never cuts a UTF-8 character in half', async () => {
    const id = await uploaded(Buffer.from('a'.repeat(10_000)), 'big.log', 'text/plain');
    const r = await preview(id);
    expect(r.body).toMatchObject({ previewable: true, truncated: true });
    expect(r.body.text).toBe('a'.repeat(4096));
    const euro = await uploaded(Buffer.from('€'.repeat(2000)), 'euros.md', 'text/markdown');
    const e = await preview(euro);
    expect(e.body).toMatchObject({ previewable: true, truncated: true });
    expect(e.body.text).toBe('€'.repeat(Math.floor(4096 / 3)));
  });

  it('is not previewable for a binary type, nor for text-typed content that is not text', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 7)]);
    const img = await preview(await uploaded(png, 'pic.png', 'image/png'));
    expect(img.status).toBe(200);
    expect(img.body).toMatchObject({ previewable: false, text: '', truncated: false });
    expect(img.body.reason).toMatch(/not a text file/i);
    const nul = await preview(await uploaded(Buffer.from('abc\u0000def'), 'data.txt', 'text/plain'));
    expect(nul.body).toMatchObject({ previewable: false, text: '' });
    const latin1 = await preview(await uploaded(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]), 'l1.txt', 'text/plain'));
    // (The scan may have rejected these and deleted their bytes; either way nothing is shown.)
    expect(latin1.body).toMatchObject({ previewable: false, text: '' });
  });

  it("answers 404 for another tenant's attachment or an unknown id, 401 without an admin token", async () => {
    const id = await uploaded(Buffer.from('secret plans'), 'plans.txt', 'text/plain');
    const theirs = await preview(id, otherAdmin);
    expect(theirs.status).toBe(404);
    expect(JSON.stringify(theirs.body)).not.toContain('secret');
    expect((await preview('att_doesnotexist')).status).toBe(404);
    expect((await call('GET', `${t.url}/v1/admin/attachments/${id}/preview`)).status).toBe(401);
    expect((await call('GET', `${t.api}/admin/attachments/${id}/preview`, { key: alice.api_key })).status).toBe(401);
  });
});
