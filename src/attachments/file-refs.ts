// Which attachments hold each content-addressed file, and the disk the files take. Several
// attachments may share one file (the same bytes uploaded twice); it is removed with the last one.
// Per digest, a file's move into place (with its count) and its removal never interleave, so a PUT
// answered 200 never loses its bytes to a removal racing it.

import { KeyedLock } from '../store/keyed-lock.js';
import type { BlobStore } from './blobs.js';

export class FileRefs {
  private readonly refs = new Map<string, number>();
  private readonly lock = new KeyedLock();
  private diskBytes = 0;

  constructor(private readonly blobs: BlobStore) {}

  /** Bytes of the files on disk (each once). */
  get bytes(): number {
    return this.diskBytes;
  }

  /**
   * At start: `held` lists the digest of every attachment whose record says its file is stored.
   * Files nobody holds (a crash between a file's move into place and its record's commit) are
   * removed; the disk in use is what is there.
   */
  async load(held: Iterable<string>): Promise<void> {
    for (const digest of held) this.refs.set(digest, (this.refs.get(digest) ?? 0) + 1);
    for (const digest of await this.blobs.list()) {
      if (this.refs.has(digest)) this.diskBytes += await this.blobs.size(digest);
      else await this.blobs.remove(digest);
    }
  }

  /** Run `place` (which moves the file into place) and count one more holder, as one step. */
  add(digest: string, size: number, place: () => Promise<void>): Promise<void> {
    return this.lock.run(digest, async () => {
      await place();
      const n = this.refs.get(digest) ?? 0;
      if (n === 0) this.diskBytes += size;
      this.refs.set(digest, n + 1);
    });
  }

  /** One holder fewer; the file goes with the last. */
  release(digest: string): Promise<void> {
    return this.lock.run(digest, async () => {
      const n = (this.refs.get(digest) ?? 1) - 1;
      if (n > 0) {
        this.refs.set(digest, n);
        return;
      }
      this.refs.delete(digest);
      this.diskBytes = Math.max(0, this.diskBytes - (await this.blobs.size(digest)));
      await this.blobs.remove(digest);
    });
  }
}
