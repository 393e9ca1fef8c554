// Attachment contents for the bench, made here: random bytes for a binary type, plain ASCII prose
// for text (words from a fixed, harmless vocabulary, so no injection pattern can match by chance),
// every file different (a content-addressed store must not get the same digest twice).

import { createHash, randomBytes } from 'node:crypto';

export interface BenchFile {
  bytes: Buffer;
  contentType: string;
  filename: string;
  /** 'sha256:<64 hex>' */
  digest: string;
}

export const BINARY_TYPE = 'application/octet-stream';
export const TEXT_TYPE = 'text/plain';

/** No executable or archive starts like this: ELF, MZ, Mach-O, #! and friends stay out by construction. */
const BINARY_PREFIX = Buffer.from('AMPBENCH', 'ascii');

const WORDS = (
  'relay agent queue message route socket bench file upload download scan window latency ' +
  'throughput server client disk sector block page cache river mountain garden orange blue ' +
  'green table chair window paper pencil number seven eleven forty morning evening weekend ' +
  'summer winter harbour bridge tunnel station market bakery coffee letter parcel stamp'
)
  .split(' ')
  .map((w) => Buffer.from(w, 'ascii'));
const LINE = 72;
const SPACE = 0x20;
const NEWLINE = 0x0a;

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** `size` random bytes behind a fixed non-executable prefix. */
export function binaryFile(size: number, name: string): BenchFile {
  const bytes = randomBytes(size);
  BINARY_PREFIX.copy(bytes, 0, 0, Math.min(size, BINARY_PREFIX.length));
  return { bytes, contentType: BINARY_TYPE, filename: `${name}.bin`, digest: sha256Digest(bytes) };
}

/** `size` bytes of ASCII prose in lines of at most 72 characters, words picked at random. */
export function textFile(size: number, name: string): BenchFile {
  const bytes = Buffer.allocUnsafe(size);
  const picks = randomBytes(Math.ceil(size / 3) + 16);
  let p = 0;
  let off = 0;
  let col = 0;
  while (off < size) {
    const w = WORDS[picks[p++ % picks.length]! % WORDS.length]!;
    if (col > 0 && col + 1 + w.length > LINE) {
      bytes[off++] = NEWLINE;
      col = 0;
      continue;
    }
    if (col > 0) {
      bytes[off++] = SPACE;
      col++;
    }
    const n = Math.min(w.length, size - off);
    w.copy(bytes, off, 0, n);
    off += n;
    col += n;
  }
  if (size > 0) bytes[size - 1] = NEWLINE;
  return { bytes, contentType: TEXT_TYPE, filename: `${name}.txt`, digest: sha256Digest(bytes) };
}
