// The attachment preview's decisions on the bytes themselves (src/attachments/preview.ts), on
// files in a temp dir: declared type, NUL bytes, UTF-8, the 4 KiB cut, control characters.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PREVIEW_BYTES, preview, textLikeType } from '../../src/attachments/preview.js';
import type { AttachmentRecord } from '../../src/store/types.js';

const dir = mkdtempSync(join(tmpdir(), 'amp-preview-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(bytes: Buffer, contentType = 'text/plain', stored = true) {
  const path = join(dir, `f${n++}`);
  writeFileSync(path, bytes);
  const rec = { contentType, stored } as AttachmentRecord;
  return preview(rec, path);
}

describe('attachment preview', () => {
  it('knows text-like declared types', () => {
    for (const t of [
      'text/plain',
      'text/csv; charset=utf-8',
      'application/json',
      'application/ld+json',
      'image/svg+xml',
    ])
      expect(textLikeType(t), t).toBe(true);
    for (const t of ['image/png', 'application/pdf', 'application/octet-stream', 'application/zip'])
      expect(textLikeType(t), t).toBe(false);
  });

  it('refuses NUL bytes, bytes that are not UTF-8, a non-text type and a file no longer stored', async () => {
    expect(await file(Buffer.from('ab\u0000cd'))).toMatchObject({
      previewable: false,
      reason: expect.stringMatching(/binary/),
    });
    expect(await file(Buffer.from([0x63, 0xe9, 0x0a]))).toMatchObject({
      previewable: false,
      reason: expect.stringMatching(/UTF-8/),
    });
    expect(await file(Buffer.from('{}'), 'application/pdf')).toMatchObject({ previewable: false });
    expect(await file(Buffer.from('x'), 'text/plain', false)).toMatchObject({ previewable: false });
  });

  it('cuts at 4 KiB without splitting a character, and strips control and bidi characters', async () => {
    const big = await file(Buffer.from('€'.repeat(3000)));
    expect(big).toMatchObject({ previewable: true, truncated: true });
    expect(Buffer.byteLength(big.text)).toBeLessThanOrEqual(PREVIEW_BYTES);
    expect(big.text).toBe('€'.repeat(1365));
    const exact = await file(Buffer.from('a'.repeat(PREVIEW_BYTES)));
    expect(exact).toMatchObject({ truncated: false });
    const dirty = await file(Buffer.from('a\r\nb\tc\u0007d\u202Ee\u0085f'));
    expect(dirty.text).toBe('a\nb\tcdef');
    expect(await file(Buffer.alloc(0))).toEqual({ previewable: true, text: '', truncated: false, reason: null });
  });
});
