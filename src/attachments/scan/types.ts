// The scanner's vocabulary, shared by the main thread, the scan worker and the clamd client.

/** One stored file to check against what its uploader declared. */
export interface ScanJob {
  path: string;
  size: number;
  /** 'sha256:<64 hex>' */
  digest: string;
  contentType: string;
  filename: string;
}

/**
 * The verdict on one file. `reasons` are stable codes, `code` or `code:detail`:
 * size_mismatch, digest_mismatch, type_mismatch, text_not_utf8, text_has_nul, blocked_type:<mime>,
 * executable_magic:<elf|pe|mach-o|java-class-or-mach-o-fat|shebang>, prompt_injection:<pattern>,
 * antivirus:<signature>; for 'retry': clamd_unreachable, clamd_timeout, clamd_error:<reply>,
 * clamd_stream_limit, read_error:<errno code>, worker_crashed, worker_timeout, scanner_closed.
 * 'retry' means "no verdict yet, try again later": never treat it as clean.
 */
export type ScanOutcome =
  | { status: 'clean' | 'basic_clean' | 'suspicious' | 'rejected'; reasons: string[]; signature?: string }
  | { status: 'retry'; reasons: string[] };

/** Where clamd listens: a unix socket path, or a TCP host and port. */
export interface ClamdTarget {
  socket?: string;
  host?: string;
  port?: number;
}

export interface Scanner {
  /** true when a clamd target is configured (files then end `clean`, not `basic_clean`). */
  readonly av: boolean;
  scan(job: ScanJob): Promise<ScanOutcome>;
  /** Stops the worker; scans still queued or running resolve as 'retry'. */
  close(): Promise<void>;
}

/** What the worker thread answers for one job (the static checks; no antivirus). */
export type StaticVerdict =
  | { status: 'ok' | 'suspicious' | 'rejected'; reasons: string[] }
  | { status: 'retry'; reasons: string[] };

/** Main thread -> scan worker. */
export interface WorkerRequest {
  id: number;
  job: ScanJob;
}

/** Scan worker -> main thread. */
export interface WorkerReply {
  id: number;
  verdict: StaticVerdict;
}
