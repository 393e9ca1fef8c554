// The disk calibrator: what the attachment store's file system can take, measured as `dd bs=1M
// conv=fsync` would: a new file written sequentially in 1 MiB blocks, fsynced, closed. Each file is
// timed on its own (open → fsync + close) and removed afterwards, outside the timing. Bounded by a
// count and a time budget.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const MIB = 1024 * 1024;
const BLOCK = MIB;

/** The median of some numbers (the mean of the middle two for an even count); 0 for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** MiB/s of `bytes` moved in `ms` milliseconds, to 0.1. */
export function mibPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? Math.round((bytes / MIB / (ms / 1000)) * 10) / 10 : 0;
}

export interface DiskWriteResult {
  value: number;
  unit: 'MiB/s';
  details: {
    file_bytes: number;
    files: number;
    block_bytes: number;
    per_file_mib_s: number[];
    median_ms: number;
    dir: string;
    method: string;
  };
}

/** Write `count` files of `bytes` random bytes into a fresh directory under `parent`; median MiB/s. */
export function diskFsyncWrite(parent: string, bytes: number, count: number, budgetMs: number): DiskWriteResult {
  const dir = mkdtempSync(join(parent, 'amp-bench-disk-'));
  const data = randomBytes(bytes);
  const rates: number[] = [];
  const times: number[] = [];
  const until = performance.now() + budgetMs;
  try {
    for (let i = 0; i < count && (i === 0 || performance.now() < until); i++) {
      const path = join(dir, `f${i}`);
      const t0 = performance.now();
      const fd = openSync(path, 'w', 0o600);
      try {
        let off = 0;
        while (off < bytes) off += writeSync(fd, data, off, Math.min(BLOCK, bytes - off));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const ms = performance.now() - t0;
      times.push(ms);
      rates.push(mibPerSecond(bytes, ms));
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    value: Math.round(median(rates) * 10) / 10,
    unit: 'MiB/s',
    details: {
      file_bytes: bytes,
      files: rates.length,
      block_bytes: BLOCK,
      per_file_mib_s: rates,
      median_ms: Math.round(median(times) * 100) / 100,
      dir: parent,
      method: 'new file, sequential 1 MiB writes, fsync, close (dd bs=1M conv=fsync); median over files',
    },
  };
}
