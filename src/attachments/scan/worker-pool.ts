// One long-lived worker thread running the static checks, fed from a queue one job at a time, so
// the event loop stays free while a 25 MiB file is hashed and read for patterns. A worker that
// dies or overruns its time answers 'retry' for its job and is replaced on the next job.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ScanJob, StaticVerdict, WorkerReply } from './types.js';

/** A static scan of 25 MiB takes well under a second; this only catches a stuck worker. */
export const DEFAULT_STATIC_TIMEOUT_MS = 60_000;

interface Pending {
  id: number;
  job: ScanJob;
  resolve: (v: StaticVerdict) => void;
}

/**
 * Compiled (dist/) the worker is plain .js. Under vitest this module is the .ts source, so the
 * worker is too, and needs tsx: on Node 20 `execArgv: ['--import', 'tsx']` does not reach a
 * worker's own entry module (ERR_UNKNOWN_FILE_EXTENSION), so a small bootstrap registers tsx's
 * ESM hooks in the worker (tsx/esm/api, found through tsx's export map) and then imports the entry.
 */
function spawnWorker(): Worker {
  // The worker needs none of the parent's node flags, and some break it (`--input-type`).
  const execArgv: string[] = [];
  const compiled = !import.meta.url.endsWith('.ts');
  if (compiled) return new Worker(new URL('./scan-worker.js', import.meta.url), { execArgv });
  const entry = new URL('./scan-worker.ts', import.meta.url).href;
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  const api = pathToFileURL(join(dirname(pkgPath), pkg.exports['./esm/api'].import.default)).href;
  const [apiUrl, entryUrl] = [JSON.stringify(api), JSON.stringify(entry)];
  const boot = `import(${apiUrl}).then((tsx) => { tsx.register(); return import(${entryUrl}); });`;
  return new Worker(boot, { eval: true, execArgv });
}

export class ScanWorkerPool {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private current: (Pending & { timer: NodeJS.Timeout }) | undefined;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly timeoutMs = DEFAULT_STATIC_TIMEOUT_MS,
    private readonly onWorkerError?: (err: Error) => void,
  ) {}

  /** The worker thread's id while one runs (tests see a crashed worker replaced). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  run(job: ScanJob): Promise<StaticVerdict> {
    if (this.closed) return Promise.resolve(retry('scanner_closed'));
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, job, resolve });
      this.pump();
    });
  }

  /** Ends the worker as a crash would (its job answers 'retry'); the next job starts a new one. */
  async terminateWorker(): Promise<void> {
    await this.worker?.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve(retry('scanner_closed'));
    this.finishCurrent(retry('scanner_closed'));
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private pump(): void {
    if (this.current || this.closed) return;
    const next = this.queue.shift();
    if (!next) return this.worker?.unref();
    const worker = this.ensureWorker();
    worker.ref();
    const timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
    this.current = { ...next, timer };
    worker.postMessage({ id: next.id, job: next.job });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = spawnWorker();
    w.on('message', (reply: WorkerReply) => {
      if (reply.id === this.current?.id) this.finishCurrent(reply.verdict);
      this.pump();
    });
    // An uncaught error in the worker is followed by 'exit'; listening keeps it off the main thread.
    w.on('error', (err) => this.onWorkerError?.(err));
    w.on('exit', () => this.onExit(w));
    this.worker = w;
    return w;
  }

  private onExit(w: Worker): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.finishCurrent(retry('worker_crashed'));
    this.pump();
  }

  private onTimeout(): void {
    const w = this.worker;
    this.worker = undefined;
    this.finishCurrent(retry('worker_timeout'));
    void w?.terminate();
    this.pump();
  }

  private finishCurrent(v: StaticVerdict): void {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    clearTimeout(c.timer);
    c.resolve(v);
  }
}

function retry(reason: string): StaticVerdict {
  return { status: 'retry', reasons: [reason] };
}
