// GET admin/attachments/{id}/preview: a safe look at a held file for the operator deciding on it.
// Only the first PREVIEW_BYTES are read, never the whole file; only text shows: the declared type
// must be text-like AND the bytes must look like text (no NUL byte, UTF-8). The text is returned as
// a JSON string with control characters (other than \n and \t) and bidirectional overrides removed;
// the page renders it as text.

import { open } from 'node:fs/promises';
import type { AttachmentRecord } from '../store/types.js';

export const PREVIEW_BYTES = 4096;

export interface Preview {
  previewable: boolean;
  text: string;
  truncated: boolean;
  reason: string | null;
}

const TEXT_TYPES = new Set([
  'application/json',
  'application/xml',
  'application/javascript',
  'application/x-yaml',
  'application/yaml',
  'application/x-sh',
  'application/sql',
  'application/csv',
  'application/x-ndjson',
  'application/toml',
]);

/** Text by its declared type: text/*, a known text application type, or a +json / +xml one. */
export function textLikeType(contentType: string): boolean {
  const t = contentType.split(';')[0]!.trim().toLowerCase();
  return t.startsWith('text/') || TEXT_TYPES.has(t) || t.endsWith('+json') || t.endsWith('+xml');
}

// C0 controls but \t and \n, DEL, C1 controls, and the bidirectional embedding/override/isolate marks.
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const UNSAFE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;

const refused = (reason: string): Preview => ({ previewable: false, text: '', truncated: false, reason });

/** Decode as UTF-8, allowing a multi-byte character cut at the end of a truncated read. */
function decodeUtf8(bytes: Buffer, truncated: boolean): string | null {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let cut = 0; cut <= (truncated ? 3 : 0) && cut <= bytes.length; cut++) {
    try {
      return decoder.decode(bytes.subarray(0, bytes.length - cut));
    } catch {
      // try one byte shorter
    }
  }
  return null;
}

/** The preview of `rec`, whose bytes (when stored) are at `path`. */
export async function preview(rec: AttachmentRecord, path: string): Promise<Preview> {
  if (!textLikeType(rec.contentType)) return refused(`Not a text file (declared type ${rec.contentType})`);
  if (!rec.stored) return refused('The file is no longer stored');
  let bytes: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(PREVIEW_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, PREVIEW_BYTES + 1, 0);
      bytes = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return refused('The file is no longer stored');
    throw e;
  }
  const truncated = bytes.length > PREVIEW_BYTES;
  const head = bytes.subarray(0, PREVIEW_BYTES);
  if (head.includes(0)) return refused('The content is binary (it holds NUL bytes)');
  const text = decodeUtf8(head, truncated);
  if (text === null) return refused('The content is not UTF-8 text');
  return { previewable: true, text: text.replace(UNSAFE, ''), truncated, reason: null };
}
