// Environment variables that look like ours (AMP_*, AID_*) but are not: a misspelled `AMP_PROT=1`
// would otherwise be ignored in silence. `serve` logs a warning for each, `check-config` fails.

import { OPTIONS } from './schema.js';

/**
 * AMP_* variables that are read by something other than the server, and so are not settings. A
 * shell that runs the server often exports them too; they must not be reported as unknown.
 */
export const CLIENT_ENV: readonly string[] = [
  'AMP_DIR', // scripts/amp-*.sh: the agents' config root (default ~/.agent-messaging)
  'AMP_PROVIDER', // scripts/amp-register.sh: provider URL when --provider is not given
  'AMP_TIMEOUT', // scripts/amp-lib.sh: curl --max-time in seconds
  'AMP_UPLOAD_TIMEOUT', // scripts/amp-lib.sh: curl --max-time of an attachment upload (default 600 s)
  'AMP_SCAN_TIMEOUT', // scripts/amp-send.sh --attach: seconds to wait for a scan (default 60)
  'AMP_ADMIN_TOKEN', // amp-relay admin: an admin JWT to use instead of minting one
  'AMP_FUZZ_SEED', // test/integration/ws-fuzz.test.ts: the fuzzer's seed
  'AMP_BENCH_PINNED', // bench/run.ts: the bench runs pinned to CPUs
  'AMP_TEST_CHROMIUM', // test/helpers/browser.ts: the Chromium the console's tests drive (default /usr/bin/chromium)
  'AMP_CONSOLE_OUTDIR', // scripts/build-console.mjs: where the console is built (default dist/console)
];

const SERVER_ENV: readonly string[] = Object.values(OPTIONS).map((o) => o.env);
const KNOWN = new Set([...SERVER_ENV, ...CLIENT_ENV]);
const OURS_RE = /^(AMP|AID)_/;

export interface UnknownVariable {
  name: string;
  /** The closest known variable, when one is close enough to be a likely typo. */
  suggestion?: string;
}

/** The AMP_* / AID_* variables of `env` that nothing reads, with a "did you mean" each. */
export function unknownVariables(env: Record<string, string | undefined>): UnknownVariable[] {
  return Object.keys(env)
    .filter((name) => OURS_RE.test(name) && !KNOWN.has(name))
    .sort()
    .map((name) => ({ name, suggestion: closest(name) }));
}

/** "AMP_PROT is not a setting (did you mean AMP_PORT?)" */
export function describeUnknown(u: UnknownVariable): string {
  return `${u.name} is not a setting${u.suggestion ? ` (did you mean ${u.suggestion}?)` : ''}`;
}

function closest(name: string): string | undefined {
  const limit = Math.max(2, Math.floor(name.length / 6));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const known of KNOWN) {
    const d = editDistance(name, known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best;
}

/** Levenshtein distance where swapping two neighbours counts as one edit (PROT -> PORT). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}
