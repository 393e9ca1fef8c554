// An open-loop prober: GET one URL every `intervalMs` from one keep-alive connection, latency
// counted from when each request was _due_ (a stall of the server is not hidden by the prober
// waiting for it). It keeps raw samples (due time as epoch ms, latency); `Phases` files them
// afterwards under the phase that was current when each was due. The bench runs it in a child
// process of its own (bench/probe.ts, `ProbeChild`), so that the load's own work (making 25 MiB
// files, sending them) does not stall the prober's event loop. Bounded: at most `maxOutstanding`
// requests in flight (past that, due requests are skipped and counted) and `maxSeconds` of running.

import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Latency } from './hist.js';
import { ROOT } from './proc.js';

export interface ProberOptions {
  intervalMs: number;
  maxOutstanding: number;
  maxSeconds: number;
}

/** [due time in epoch ms, latency in ms, 1 = a 200 answer / 0 = an error]. */
export type Sample = [number, number, 0 | 1];

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes. */
export const epochNow = (): number => performance.timeOrigin + performance.now();

export class Prober {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly samples: Sample[] = [];
  /** Due times of the requests skipped because too many were in flight. */
  readonly skipped: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private outstanding = 0;
  private started = 0;
  private dueCount = 0;
  private idle: (() => void) | undefined;
  /** Called once, at the first answer (the connection is up). */
  onFirst: () => void = () => {};
  lastError = '';

  constructor(
    private readonly url: URL,
    private readonly o: ProberOptions,
  ) {}

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.outstanding;
  }

  start(): void {
    this.started = epochNow();
    this.dueCount = 0;
    // A 1 ms tick sends whatever has fallen due (several after a late tick), as the rates scenario does.
    this.timer = setInterval(() => this.tick(), 1);
  }

  private tick(): void {
    const now = epochNow();
    if (now - this.started > this.o.maxSeconds * 1000) {
      this.halt();
      return;
    }
    const due = Math.floor((now - this.started) / this.o.intervalMs);
    while (this.dueCount < due) {
      const dueAt = this.started + ++this.dueCount * this.o.intervalMs;
      if (this.outstanding >= this.o.maxOutstanding) this.skipped.push(dueAt);
      else this.send(dueAt);
    }
  }

  private send(dueAt: number): void {
    this.outstanding++;
    const done = (ok: boolean) => {
      this.outstanding--;
      this.samples.push([dueAt, Math.round((epochNow() - dueAt) * 1000) / 1000, ok ? 1 : 0]);
      if (ok && this.samples.length === 1) this.onFirst();
      if (this.outstanding === 0) this.idle?.();
    };
    const req = request(this.url, { agent: this.agent }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 200));
      res.on('error', (e) => {
        this.lastError = e.message;
        done(false);
      });
    });
    req.on('error', (e) => {
      this.lastError = e.message;
      done(false);
    });
    req.end();
  }

  private halt(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stop sending; wait (at most `waitMs`) for the requests in flight, then close the connection. */
  async stop(waitMs = 10_000): Promise<void> {
    this.halt();
    if (this.outstanding > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        this.idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.agent.destroy();
  }
}

export interface PhaseStats {
  samples: number;
  errors: number;
  skipped: number;
  /** Wall time the phase was current, in seconds. */
  seconds: number;
  /**
   * Each window of the phase in turn: its length, samples, p99, max, and when the slowest request
   * was due (ms from the window's start), to see where a spike was.
   */
  windows: { seconds: number; samples: number; p99_ms: number; max_ms: number; max_due_at_ms: number }[];
}

/** Named windows of time (epoch ms); a sample belongs to the window its due time falls in. */
export class Phases {
  private readonly windows: { name: string; from: number; to: number }[] = [];
  private current: { name: string; from: number } | undefined;

  /** From now on, phase `name` (undefined: none; samples due then are not kept). */
  set(name: string | undefined, at = epochNow()): void {
    if (this.current) this.windows.push({ ...this.current, to: at });
    this.current = name === undefined ? undefined : { name, from: at };
  }

  private windowAt(t: number): number {
    return this.windows.findIndex((w) => t >= w.from && t < w.to);
  }

  /** Histograms and counts per phase (phases never current are absent). */
  file(samples: readonly Sample[], skipped: readonly number[]): Map<string, { hist: Latency; stats: PhaseStats }> {
    this.set(undefined);
    const out = new Map<string, { hist: Latency; stats: PhaseStats }>();
    const per = this.windows.map(() => new Latency());
    const worst = this.windows.map(() => ({ ms: -1, at: 0 }));
    for (const w of this.windows) {
      const e = out.get(w.name) ?? {
        hist: new Latency(),
        stats: { samples: 0, errors: 0, skipped: 0, seconds: 0, windows: [] },
      };
      e.stats.seconds = +(e.stats.seconds + (w.to - w.from) / 1000).toFixed(3);
      out.set(w.name, e);
    }
    for (const [due, ms, ok] of samples) {
      const i = this.windowAt(due);
      if (i < 0) continue;
      const e = out.get(this.windows[i]!.name)!;
      if (ok) {
        e.hist.recordMs(ms);
        per[i]!.recordMs(ms);
        if (ms > worst[i]!.ms) worst[i] = { ms, at: due - this.windows[i]!.from };
        e.stats.samples++;
      } else e.stats.errors++;
    }
    for (const due of skipped) {
      const i = this.windowAt(due);
      if (i >= 0) out.get(this.windows[i]!.name)!.stats.skipped++;
    }
    this.windows.forEach((w, i) => {
      const s = per[i]!.summary();
      const seconds = +((w.to - w.from) / 1000).toFixed(3);
      const max_due_at_ms = Math.round(worst[i]!.at);
      out
        .get(w.name)!
        .stats.windows.push({ seconds, samples: s.count, p99_ms: s.p99_ms, max_ms: s.max_ms, max_due_at_ms });
    });
    return out;
  }
}

/** The prober in a child process (bench/probe.ts) on the given cores; `stop()` returns its samples. */
export class ProbeChild {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly result: Promise<{ samples: Sample[]; skipped: number[]; lastError: string }>,
  ) {}

  /** Starts the child and resolves once its first request has been answered. */
  static async start(url: string, o: ProberOptions, cores: string | undefined): Promise<ProbeChild> {
    const args = [
      '--import',
      'tsx',
      join(ROOT, 'bench', 'probe.ts'),
      url,
      ...[o.intervalMs, o.maxOutstanding, o.maxSeconds].map(String),
    ];
    const proc =
      cores === undefined
        ? spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
        : spawn('taskset', ['-c', cores, process.execPath, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const lines = createInterface({ input: proc.stdout! });
    const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
    const ready = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`probe child: no first answer within 30 s: ${err}`)), 30_000);
      lines.once('line', (l) => {
        clearTimeout(t);
        if (l === 'ready') resolve();
        else reject(new Error(`probe child said ${l.slice(0, 200)}: ${err}`));
      });
      void exited.then((c) => reject(new Error(`probe child exited ${c}: ${err}`)));
    });
    const result = new Promise<{ samples: Sample[]; skipped: number[]; lastError: string }>((resolve, reject) => {
      void ready.then(() =>
        lines.once('line', (l) => {
          try {
            resolve(JSON.parse(l));
          } catch (e) {
            reject(new Error(`probe child: its samples (${l.length} chars) are not JSON: ${(e as Error).message}`));
          }
        }),
      );
      void exited.then((c) => reject(new Error(`probe child exited ${c} before its samples: ${err}`)));
    });
    result.catch(() => {});
    try {
      await ready;
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    }
    return new ProbeChild(proc, result);
  }

  /** Tell the child to stop (closing its stdin) and take its samples; it is killed after 30 s. */
  async stop(): Promise<{ samples: Sample[]; skipped: number[]; lastError: string }> {
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    this.proc.stdin!.end();
    try {
      return await this.result;
    } finally {
      clearTimeout(t);
    }
  }
}
