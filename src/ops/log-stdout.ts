// stdout for log lines: asynchronous and batched. At info level every HTTP request is a line; a
// write per line (an fs.write through the libuv pool: in the REST bench profile, more event-loop
// time than the rest of the logging) would cost more than the line itself, and sonic-boom's own
// batching (minLength) measures the whole waiting buffer on every line. So lines wait here
// LOG_BATCH_MS, or while a write is in flight, and go to sonic-boom (which handles partial writes,
// EAGAIN and EPIPE) joined: at most one write in flight and about 100 writes a second, however busy.
//
// Exit: pino's exit hook makes sonic-boom write what it holds, but a write still in flight when
// the process exits is lost; `flush(cb)` calls back once everything is written, and the server's
// close() waits for it. Lines still waiting here are written synchronously on 'exit'.

import { writeSync } from 'node:fs';
import { pino } from 'pino';

type Sonic = ReturnType<typeof pino.destination>;

/** How long a line may wait for others to share its write. */
const LOG_BATCH_MS = 10;
/** Lines kept while stdout does not take them (a reader that stopped reading); later ones are dropped. */
const MAX_PENDING_LINES = 100_000;

export class BatchedStdout {
  private pending: string[] = [];
  private scheduled = false;
  /** sonic-boom has data it has not finished writing (it emits 'drain' when done). */
  private busy = false;
  private waiters: Array<() => void> = [];
  /** Lines dropped since the last write (stdout too slow), reported in the next one. */
  private dropped = 0;
  /** stdout failed (EPIPE: the reader is gone): lines are dropped from then on. */
  private broken = false;
  private readonly sonic: Sonic;

  constructor(private readonly fd = 1) {
    process.on('exit', () => this.writeNow());
    this.sonic = pino.destination({ dest: fd, sync: false });
    this.sonic.on('drain', () => {
      this.busy = false;
      if (this.waiters.length > 0) this.handOver();
      else this.schedule();
      if (!this.busy) for (const w of this.waiters.splice(0)) w();
    });
    // sonic-boom stops writing after EPIPE; any other error would otherwise end the process.
    this.sonic.on('error', () => {
      this.broken = true;
      this.busy = false;
      this.pending = [];
      for (const w of this.waiters.splice(0)) w();
    });
  }

  write(line: string): void {
    if (this.broken) return;
    if (this.pending.length >= MAX_PENDING_LINES) {
      this.dropped++;
      return;
    }
    this.pending.push(line);
    this.schedule();
  }

  private schedule(): void {
    if (this.busy || this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    setTimeout(() => this.handOver(), LOG_BATCH_MS).unref();
  }

  /** Calls back once every line written so far is out of the process (or could not be written). */
  flush(cb: (err?: Error) => void): void {
    this.handOver();
    if (this.busy) this.waiters.push(() => cb());
    else cb();
  }

  /** At exit: no later turn will come, so the lines of this one are written here and now. */
  private writeNow(): void {
    if (this.pending.length === 0) return;
    try {
      writeSync(this.fd, this.pending.join(''));
    } catch {
      // stdout closed or full: nothing more can be done at exit
    }
    this.pending = [];
  }

  private handOver(): void {
    this.scheduled = false;
    if (this.busy || this.pending.length === 0) return;
    if (this.dropped > 0) {
      const note = { level: 40, time: Date.now(), msg: 'stdout too slow: log lines dropped', dropped: this.dropped };
      this.pending.push(`${JSON.stringify(note)}\n`);
      this.dropped = 0;
    }
    const chunk = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.busy = true;
    this.sonic.write(chunk);
  }
}
