// The scanner the server holds: static checks in the worker thread, then clamd when configured.
// clamd runs on everything the static checks did not reject (a suspicious file may also carry a
// virus, and an admin must not approve that one).

import { clamdScanFile, DEFAULT_CLAMD_TIMEOUT_MS } from './clamd.js';
import type { ClamdTarget, ScanJob, ScanOutcome, Scanner } from './types.js';
import { DEFAULT_STATIC_TIMEOUT_MS, ScanWorkerPool } from './worker-pool.js';

export interface ScannerOptions {
  /** clamd's socket or host and port; absent (or empty) = no antivirus, clean files are `basic_clean`. */
  clamd?: ClamdTarget;
  /** Bound on one clamd scan and on one static scan in the worker (ms). */
  timeoutMs?: number;
  /** Told about a worker thread that failed (it is replaced; its job answered 'retry'), for the log. */
  onWorkerError?: (err: Error) => void;
}

function hasTarget(t: ClamdTarget | undefined): t is ClamdTarget {
  return !!t && (!!t.socket || (!!t.host && !!t.port));
}

export function createScanner(opts: ScannerOptions = {}): Scanner {
  const clamd = hasTarget(opts.clamd) ? opts.clamd : undefined;
  const pool = new ScanWorkerPool(opts.timeoutMs ?? DEFAULT_STATIC_TIMEOUT_MS, opts.onWorkerError);
  const clamdTimeoutMs = opts.timeoutMs ?? DEFAULT_CLAMD_TIMEOUT_MS;
  let closed = false;

  async function scan(job: ScanJob): Promise<ScanOutcome> {
    const verdict = await pool.run(job);
    const { reasons } = verdict;
    if (verdict.status === 'retry') return { status: 'retry', reasons };
    if (verdict.status === 'rejected') return { status: 'rejected', reasons };
    const passed = verdict.status === 'ok' ? ({ status: clamd ? 'clean' : 'basic_clean', reasons } as const) : null;
    if (!clamd) return passed ?? { status: 'suspicious', reasons };
    if (closed) return { status: 'retry', reasons: ['scanner_closed'] };
    const av = await clamdScanFile(clamd, job.path, clamdTimeoutMs);
    if (av.kind === 'error') return { status: 'retry', reasons: [av.reason] };
    if (av.kind === 'found') {
      return { status: 'rejected', reasons: [`antivirus:${av.signature}`], signature: av.signature };
    }
    return passed ?? { status: 'suspicious', reasons };
  }

  return {
    av: !!clamd,
    scan,
    async close() {
      closed = true;
      await pool.close();
    },
  };
}
