// The attachments bench's plumbing (bench/lib/disk.ts, files.ts, prober.ts, the rows of
// bench/scenarios/attachments.ts). Nothing here asserts a speed: only counts, shapes and clean-up.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskFsyncWrite, median, mibPerSecond, MIB } from '../../bench/lib/disk.js';
import { binaryFile, sha256Digest, textFile } from '../../bench/lib/files.js';
import { Latency } from '../../bench/lib/hist.js';
import { Phases, ProbeChild, Prober } from '../../bench/lib/prober.js';
import { attachmentRows, diskCalibrator, type AttachmentOutcome } from '../../bench/scenarios/attachments.js';

const WAIT_MS = 10_000;

describe('median and MiB/s', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([])).toBe(0);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(mibPerSecond(25 * MIB, 500)).toBe(50);
    expect(mibPerSecond(MIB, 0)).toBe(0);
  });
});

describe('bench file contents', () => {
  it('binary files: exact size, a fixed non-executable prefix, the digest of the bytes, all different', () => {
    const a = binaryFile(100_000, 'a');
    const b = binaryFile(100_000, 'b');
    expect(a.bytes.length).toBe(100_000);
    expect(a.bytes.subarray(0, 8).toString('ascii')).toBe('AMPBENCH');
    expect(a.digest).toBe(sha256Digest(a.bytes));
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.digest).not.toBe(b.digest);
    expect(a.contentType).toBe('application/octet-stream');
  });

  it('text files: exact size, printable ASCII in lines of at most 72, ending in a newline, all different', () => {
    const a = textFile(200_003, 'a');
    const b = textFile(200_003, 'b');
    expect(a.bytes.length).toBe(200_003);
    const text = a.bytes.toString('latin1');
    expect(text).toMatch(/^[a-z \n]+$/);
    expect(text.endsWith('\n')).toBe(true);
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeLessThanOrEqual(72);
    expect(a.digest).toBe(sha256Digest(a.bytes));
    expect(a.digest).not.toBe(b.digest);
    expect(a.contentType).toBe('text/plain');
  });
});

describe('disk calibrator', () => {
  it('writes the files asked for, reports a median and leaves nothing behind', () => {
    const parent = mkdtempSync(join(tmpdir(), 'amp-bench-test-'));
    try {
      const r = diskFsyncWrite(parent, 300_000, 3, 60_000);
      expect(r.unit).toBe('MiB/s');
      expect(r.details.files).toBe(3);
      expect(r.details.per_file_mib_s).toHaveLength(3);
      expect(r.value).toBeGreaterThan(0);
      expect(readdirSync(parent)).toEqual([]);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('Prober (open loop, one keep-alive connection)', () => {
  let server: Server;
  let served = 0;
  let onServed: () => void = () => {};
  /** When set, the next request is held (its answer kept in holdFirst) instead of answered. */
  let holdNext = false;
  let holdFirst: (() => void) | undefined;
  const sockets = new Set<string>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      sockets.add(`${req.socket.remotePort}`);
      const answer = () => {
        res.end('{"status":"ok"}');
        served++;
        onServed();
      };
      if (holdNext) {
        holdNext = false;
        holdFirst = answer;
      } else answer();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const servedAtLeast = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${served} of ${n} served`)), WAIT_MS);
      onServed = () => {
        if (served >= n) {
          clearTimeout(t);
          resolve();
        }
      };
      onServed();
    });

  it('files samples under the phase current when each was due, counts a stall from the due time', async () => {
    const port = (server.address() as AddressInfo).port;
    const p = new Prober(new URL(`http://127.0.0.1:${port}/health`), {
      intervalMs: 2,
      maxOutstanding: 1000,
      maxSeconds: 30,
    });
    const phases = new Phases();
    phases.set('a');
    holdNext = true;
    p.start();
    // The first answer is held until the prober has queued more behind it on its one connection.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no request arrived')), WAIT_MS);
      const check = setInterval(() => {
        if (holdFirst) {
          clearInterval(check);
          clearTimeout(t);
          resolve();
        }
      }, 1);
    });
    const held = performance.now();
    await new Promise<void>((r) => setTimeout(r, 50)); // the stall being measured, not a wait for an event
    holdFirst!();
    const stall = performance.now() - held;
    await servedAtLeast(20);
    phases.set('b');
    // What is in flight now was due in phase a; 20 answers after those are phase b's.
    await servedAtLeast(served + p.inFlight + 20);
    await p.stop();
    const filed = phases.file(p.samples, p.skipped);
    const a = filed.get('a')!;
    const b = filed.get('b')!;
    expect(a.stats.errors + b.stats.errors).toBe(0);
    expect(p.samples).toHaveLength(served);
    expect(a.stats.samples + b.stats.samples).toBe(served);
    expect(b.stats.samples).toBeGreaterThanOrEqual(20);
    expect(a.hist.summary().max_ms).toBeGreaterThanOrEqual(stall);
    expect(sockets.size).toBe(1);
  });

  it('runs in a child process: ready at its first answer, all its samples back when stopped', async () => {
    const port = (server.address() as AddressInfo).port;
    const before = served;
    const child = await ProbeChild.start(
      `http://127.0.0.1:${port}/health`,
      { intervalMs: 2, maxOutstanding: 1000, maxSeconds: 30 },
      undefined,
    );
    await servedAtLeast(before + 20);
    const r = await child.stop();
    expect(r.samples).toHaveLength(served - before);
    expect(r.samples.every(([due, ms, ok]) => due > 1e12 && ms >= 0 && ok === 1)).toBe(true);
    expect(r.lastError).toBe('');
  });

  it('hands back output far larger than a pipe buffer whole (it exits only once it is flushed)', async () => {
    const port = (server.address() as AddressInfo).port;
    const before = served;
    // Due every 50 µs with one request in flight at most: nearly all are skipped, and listed.
    const child = await ProbeChild.start(
      `http://127.0.0.1:${port}/health`,
      { intervalMs: 0.05, maxOutstanding: 1, maxSeconds: 30 },
      undefined,
    );
    await servedAtLeast(before + 1000);
    const r = await child.stop();
    expect(r.samples).toHaveLength(served - before);
    expect(JSON.stringify(r).length).toBeGreaterThan(4 * 65_536); // four pipe buffers
  });
});

describe('Phases', () => {
  it('files each sample and skip under the window its due time falls in; none outside windows', () => {
    const ph = new Phases();
    ph.set('x', 100);
    ph.set(undefined, 200);
    ph.set('y', 300);
    ph.set('x', 400);
    ph.set(undefined, 450);
    const f = ph.file(
      [
        [150, 1, 1],
        [250, 2, 1],
        [350, 3, 0],
        [420, 4, 1],
        [460, 5, 1],
      ],
      [120, 310, 500],
    );
    expect(f.get('x')!.stats).toMatchObject({ samples: 2, errors: 0, skipped: 1, seconds: 0.15 });
    expect(f.get('y')!.stats).toMatchObject({ samples: 0, errors: 1, skipped: 1, seconds: 0.1 });
    expect(f.get('x')!.stats.windows.map((w) => [w.seconds, w.samples])).toEqual([
      [0.1, 1],
      [0.05, 1],
    ]);
    expect(f.get('x')!.stats.windows[1]!.max_ms).toBeCloseTo(4, 2);
    expect(f.get('x')!.stats.windows.map((w) => w.max_due_at_ms)).toEqual([50, 20]);
    expect(f.get('x')!.hist.summary().max_ms).toBeCloseTo(4, 2);
  });
});

describe('attachment rows', () => {
  it('quotes uploads against the disk calibrator of their size and the scan p99 against the baseline', () => {
    const phase = (ms: number) => {
      const hist = new Latency();
      hist.recordMs(ms);
      return { hist, stats: { samples: 1, errors: 0, skipped: 0, seconds: 1, windows: [] } };
    };
    const phases = new Map([
      ['baseline', phase(2)],
      ['scan', phase(6)],
    ]);
    const up = (put: number, total: number) => ({
      put_ms: put,
      total_ms: total,
      scan_ms: 1,
      scan_status: 'basic_clean',
    });
    const out: AttachmentOutcome = {
      sizes: [
        { bytes: MIB, uploads: [up(10, 20), up(20, 40), up(30, 60)], download_ms: [5], url_ms: [4] },
        { bytes: 25 * MIB, uploads: [up(500, 1000)], download_ms: [100], url_ms: [] },
      ],
      phases,
      scans: [],
      scan_cpu: [],
      baseline_cpu: [],
      errors: 1,
      notes: ['x'],
    };
    const o = {
      label: 'a',
      sizes: [],
      scans: 1,
      scanBytes: 25 * MIB,
      baselineSeconds: 1,
      probeIntervalMs: 2,
      av: false,
    };
    const disk = { [diskCalibrator(MIB)]: 200, [diskCalibrator(25 * MIB)]: 100 };
    expect(Object.keys(disk)).toEqual(['disk_fsync_write_1mib', 'disk_fsync_write_25mib']);
    const rows = attachmentRows(out, disk, o);
    const by = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(rows).toHaveLength(10);
    expect(by.att_put_1mib).toMatchObject({ value: 50, unit: 'MiB/s', ratio: 0.25, errors: 1, notes: ['x'] });
    expect(by.att_upload_scanned_1mib).toMatchObject({ value: 25, ratio: 0.125 });
    expect(by.att_put_25mib).toMatchObject({ value: 50, ratio: 0.5 });
    expect(by.att_download_1mib).toMatchObject({ value: 200 });
    expect(by.att_download_1mib!.ratio).toBeUndefined();
    expect(by.att_url_25mib).toMatchObject({ value: 0, details: { files: 0 } });
    expect(by.att_health_scan!.value).toBeCloseTo(6, 1); // HDR: 3 significant digits
    expect(by.att_health_scan!.ratio).toBeCloseTo(3, 1);
    expect(by.att_health_scan!.calibrator).toBe('att_health_baseline p99');
    expect(by.att_health_baseline!.latency!.count).toBe(1);
  });
});
