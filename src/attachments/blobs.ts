// Attachment bytes on disk, content-addressed: `<data dir>/attachments/sha256/<2 hex>/<64 hex>`.
// An upload streams into `tmp/<attachment id>.part` while its SHA-256 and length are counted; only
// bytes whose digest and size match what was declared are fsynced and renamed into place (and the
// directory fsynced), so a file under `sha256/` always holds exactly the bytes its name says.
// Several attachments may share one file; the service counts references and removes it with the last.

import { type FileHandle, mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { AmpError } from '../../proto/index.js';
import { createSha256 } from '../crypto/hash.js';

export const ATTACHMENTS_DIR = 'attachments';
/** Free space an upload must leave on the disk (the store refuses writes below 8 MiB free). */
export const DISK_RESERVE_BYTES = 64 * 1024 * 1024;

function diskFull(): AmpError {
  return new AmpError('insufficient_storage', 'The server has no room for this file now; retry later', {
    retryAfter: 60,
  });
}

/** One upload being written. `write` refuses the chunk that would pass the declared size. */
export interface UploadSink {
  write(chunk: Buffer): Promise<void>;
  /** Check length and digest, fsync and move into place. Throws 422 on a mismatch (the file is gone then). */
  finish(): Promise<void>;
  /** Remove the partial file (idempotent). */
  discard(): Promise<void>;
}

export class BlobStore {
  readonly root: string;
  private readonly tmp: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, ATTACHMENTS_DIR);
    this.tmp = join(this.root, 'tmp');
  }

  /** Create the directories; drop partial uploads a previous run left (none can be in progress yet). */
  async open(): Promise<void> {
    await mkdir(this.tmp, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.tmp)) await rm(join(this.tmp, name), { force: true });
  }

  pathOf(digest: string): string {
    const hex = digest.slice('sha256:'.length);
    return join(this.root, 'sha256', hex.slice(0, 2), hex);
  }

  /** Digests of the files under sha256/ (names that are not a digest are left out). */
  async list(): Promise<string[]> {
    const base = join(this.root, 'sha256');
    const out: string[] = [];
    for (const dir of await readdir(base).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of await readdir(join(base, dir)).catch(() => [] as string[]))
        if (/^[0-9a-f]{64}$/.test(name) && name.startsWith(dir)) out.push(`sha256:${name}`);
    }
    return out;
  }

  async exists(digest: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(digest))).isFile();
    } catch {
      return false;
    }
  }

  /** Bytes of the file (0 when it is not there). */
  async size(digest: string): Promise<number> {
    try {
      return (await stat(this.pathOf(digest))).size;
    } catch {
      return 0;
    }
  }

  async remove(digest: string): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  /**
   * Free bytes on the file system of the attachments (undefined when it cannot tell). An upload
   * must leave `DISK_RESERVE_BYTES` free: the store beside it refuses writes when the disk is
   * nearly full, and uploads must not be what fills it.
   */
  async freeBytes(): Promise<number | undefined> {
    try {
      const fs = await statfs(this.root);
      return fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
  }

  /** Start writing the bytes of attachment `id`, declared as `size` bytes with `digest`. */
  async begin(id: string, size: number, digest: string): Promise<UploadSink> {
    const free = await this.freeBytes();
    if (free !== undefined && free < size + DISK_RESERVE_BYTES) throw diskFull();
    const partPath = join(this.tmp, `${id}.part`);
    const fh = await open(partPath, 'w', 0o600);
    return new Upload(fh, partPath, size, digest, this.pathOf(digest));
  }
}

class Upload implements UploadSink {
  private readonly hash = createSha256();
  private received = 0;
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly partPath: string,
    private readonly size: number,
    private readonly digest: string,
    private readonly finalPath: string,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.received += chunk.length;
    if (this.received > this.size) throw sizeMismatch(this.size, this.received, 'more');
    this.hash.update(chunk);
    let off = 0;
    try {
      while (off < chunk.length) off += (await this.fh.write(chunk, off, chunk.length - off)).bytesWritten;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw code === 'ENOSPC' || code === 'EDQUOT' ? diskFull() : e;
    }
  }

  async finish(): Promise<void> {
    if (this.received !== this.size) {
      await this.discard();
      throw sizeMismatch(this.size, this.received, 'fewer');
    }
    const actual = `sha256:${this.hash.digestHex()}`;
    if (actual !== this.digest) {
      await this.discard();
      throw new AmpError('upload_digest_mismatch', 'The uploaded bytes do not have the declared SHA-256 digest', {
        details: { declared: this.digest, actual },
      });
    }
    await this.fh.sync();
    await this.close();
    const dir = join(this.finalPath, '..');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await rename(this.partPath, this.finalPath);
    await fsyncDir(dir);
  }

  async discard(): Promise<void> {
    await this.close();
    await rm(this.partPath, { force: true });
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

function sizeMismatch(declared: number, received: number, kind: 'more' | 'fewer'): AmpError {
  return new AmpError(
    'upload_size_mismatch',
    kind === 'more'
      ? `The upload is larger than the declared size of ${declared} bytes; nothing was stored`
      : `The upload ended after ${received} bytes; ${declared} were declared; nothing was stored`,
    { details: { declared, received } },
  );
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
