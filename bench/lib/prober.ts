// An open-loop prober: GET one URL every `intervalMs` from one keep-alive connection, latency
// counted from when each request was _due_ (a stall of the server is not hidden by the prober
// waiting for it). Each sample goes to the histogram of the phase that was current when it was due;
// samples due while no phase is set are not kept. Bounded: at most `maxOutstanding` requests in
// flight (past that, due requests are skipped and counted) and at most `maxSeconds` of running.

import { Agent, request } from 'node:http';
import { Latency } from './hist.js';

export interface ProberOptions {
  intervalMs: number;
  maxOutstanding: number;
  maxSeconds: number;
}

export interface PhaseStats {
  samples: number;
  errors: number;
  skipped: number;
}

export class Prober {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly hists = new Map<string, Latency>();
  private readonly stats = new Map<string, PhaseStats>();
  private phase: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private outstanding = 0;
  private started = 0;
  private dueCount = 0;
  private idle: (() => void) | undefined;
  lastError = '';

  constructor(
    private readonly url: URL,
    private readonly o: ProberOptions,
  ) {}

  /** Samples due from now on go to `name` (undefined: dropped). */
  setPhase(name: string | undefined): void {
    this.phase = name;
    if (name !== undefined && !this.hists.has(name)) {
      this.hists.set(name, new Latency());
      this.stats.set(name, { samples: 0, errors: 0, skipped: 0 });
    }
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.outstanding;
  }

  histogram(name: string): Latency {
    return this.hists.get(name) ?? new Latency();
  }

  phaseStats(name: string): PhaseStats {
    return this.stats.get(name) ?? { samples: 0, errors: 0, skipped: 0 };
  }

  start(): void {
    this.started = performance.now();
    this.dueCount = 0;
    // A 1 ms tick sends whatever has fallen due (several after a late tick), as the rates scenario does.
    this.timer = setInterval(() => this.tick(), 1);
  }

  private tick(): void {
    const now = performance.now();
    if (now - this.started > this.o.maxSeconds * 1000) {
      this.halt();
      return;
    }
    const due = Math.floor((now - this.started) / this.o.intervalMs);
    while (this.dueCount < due) {
      const dueAt = this.started + ++this.dueCount * this.o.intervalMs;
      const phase = this.phase;
      if (this.outstanding >= this.o.maxOutstanding) {
        if (phase !== undefined) this.stats.get(phase)!.skipped++;
        continue;
      }
      this.send(dueAt, phase);
    }
  }

  private send(dueAt: number, phase: string | undefined): void {
    this.outstanding++;
    const done = (ok: boolean) => {
      this.outstanding--;
      if (phase !== undefined) {
        const s = this.stats.get(phase)!;
        if (ok) {
          this.hists.get(phase)!.recordMs(performance.now() - dueAt);
          s.samples++;
        } else s.errors++;
      }
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
    this.phase = undefined;
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
