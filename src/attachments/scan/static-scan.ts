// The static checks of one stored file (spec §22 "Scan"), reading it once in chunks: actual size
// and SHA-256 against the declared ones, blocked types, executable magic bytes, magic bytes against
// the declared type, UTF-8 text, prompt-injection patterns. Runs in the scan worker thread; never
// holds more than one chunk of the file in memory.

import { open } from 'node:fs/promises';
import { createSha256, type Sha256Stream } from '../../crypto/hash.js';
import { InjectionScanner, MAX_TEXT_SCAN_BYTES } from './injection.js';
import {
  BLOCKED_MIME_TYPES,
  baseMime,
  detectFormat,
  executableKind,
  HEADER_BYTES,
  isTextMime,
  typeFits,
} from './rules.js';
import type { ScanJob, StaticVerdict } from './types.js';

export const READ_CHUNK_BYTES = 1024 * 1024;

/** Everything learnt from the chunks read so far. */
class FileFacts {
  readonly mime: string;
  readonly declaredText: boolean;
  size = 0;
  header = new Uint8Array(0);
  readonly sha: Sha256Stream = createSha256();
  /** Still possibly text: no NUL and valid UTF-8 so far. */
  text = true;
  nul = false;
  badUtf8 = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly injection = new InjectionScanner();
  private textBytes = 0;

  constructor(readonly job: ScanJob) {
    this.mime = baseMime(job.contentType);
    this.declaredText = isTextMime(this.mime);
  }

  feed(chunk: Uint8Array): void {
    this.size += chunk.length;
    this.sha.update(chunk);
    if (this.header.length < HEADER_BYTES) this.growHeader(chunk);
    if (this.text) this.feedText(chunk);
  }

  private growHeader(chunk: Uint8Array): void {
    const need = HEADER_BYTES - this.header.length;
    const next = new Uint8Array(this.header.length + Math.min(need, chunk.length));
    next.set(this.header);
    next.set(chunk.subarray(0, need), this.header.length);
    this.header = next;
    // A known binary format is no text: stop decoding (the type check judges it).
    if (!this.declaredText && (detectFormat(this.header) || executableKind(this.header))) this.text = false;
  }

  private feedText(chunk: Uint8Array): void {
    if (chunk.includes(0)) return this.notText('nul');
    try {
      const s = this.decoder.decode(chunk, { stream: true });
      if (this.textBytes < MAX_TEXT_SCAN_BYTES) this.injection.push(s);
      this.textBytes += chunk.length;
    } catch {
      this.notText('utf8');
    }
  }

  private notText(why: 'nul' | 'utf8'): void {
    this.text = false;
    if (why === 'nul') this.nul = true;
    else this.badUtf8 = true;
  }

  /** Call after the last chunk. */
  finish(): void {
    if (!this.text) return;
    try {
      this.decoder.decode();
    } catch {
      this.notText('utf8');
    }
  }

  injectionHits(): string[] {
    return this.text ? this.injection.found() : [];
  }
}

function integrityReasons(f: FileFacts): string[] {
  const out: string[] = [];
  if (f.size !== f.job.size) out.push('size_mismatch');
  const declared = f.job.digest.toLowerCase();
  if (f.size === f.job.size && declared !== `sha256:${f.sha.digestHex()}`) out.push('digest_mismatch');
  return out;
}

function contentReasons(f: FileFacts): string[] {
  const out: string[] = [];
  if (BLOCKED_MIME_TYPES.has(f.mime)) out.push(`blocked_type:${f.mime}`);
  const exe = executableKind(f.header);
  if (exe) out.push(`executable_magic:${exe}`);
  const fits = typeFits(f.mime, f.header);
  const badText = f.declaredText && (f.nul || f.badUtf8);
  if (!fits || badText) out.push('type_mismatch');
  // Which rule of text failed, when the magic bytes did not already say it is something else.
  if (fits && f.declaredText && f.nul) out.push('text_has_nul');
  if (fits && f.declaredText && f.badUtf8) out.push('text_not_utf8');
  return out;
}

/** The verdict once the whole file has been read (or reading stopped at a size lie). */
function verdictOf(f: FileFacts): StaticVerdict {
  const integrity = integrityReasons(f);
  if (integrity.length) return { status: 'rejected', reasons: integrity };
  const content = contentReasons(f);
  if (content.length) return { status: 'rejected', reasons: content };
  const hits = f.injectionHits();
  if (hits.length) return { status: 'suspicious', reasons: hits.map((h) => `prompt_injection:${h}`) };
  return { status: 'ok', reasons: [] };
}

/** Reads `job.path` chunk by chunk and judges it. I/O errors answer 'retry' (no verdict). */
export async function staticScan(job: ScanJob): Promise<StaticVerdict> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(job.path, 'r');
  } catch (err) {
    return { status: 'retry', reasons: [`read_error:${errCode(err)}`] };
  }
  try {
    const facts = new FileFacts(job);
    const buf = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      facts.feed(buf.subarray(0, bytesRead));
      // More bytes than declared: the verdict is known, reading on would only cost time.
      if (facts.size > job.size) break;
    }
    facts.finish();
    return verdictOf(facts);
  } catch (err) {
    return { status: 'retry', reasons: [`read_error:${errCode(err)}`] };
  } finally {
    await handle.close().catch(() => {});
  }
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'unknown';
}
