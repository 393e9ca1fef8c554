// Progress (one line a second) and the result files: JSON for machines, a Markdown table for people.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LatencySummary } from './hist.js';

const PROGRESS_INTERVAL_MS = 1000;

/** Print `label: line()` once a second until the returned stop function is called. */
export function progress(label: string, line: () => string): () => void {
  const started = performance.now();
  const timer = setInterval(() => {
    const t = ((performance.now() - started) / 1000).toFixed(0).padStart(3);
    process.stdout.write(`  [${label}] t=${t}s ${line()}\n`);
  }, PROGRESS_INTERVAL_MS);
  return () => clearInterval(timer);
}

/** Messages per second over a count and a time in milliseconds. */
export function perSecond(count: number, ms: number): number {
  return ms > 0 ? Math.round((count * 1000) / ms) : 0;
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** The headline figure and its unit. */
  value: number;
  unit: string;
  /** Which calibrator the ratio is taken against, and the ratio. */
  calibrator?: string;
  ratio?: number;
  target?: string;
  latency?: LatencySummary;
  details: Record<string, unknown>;
  errors: number;
  notes: string[];
}

export interface BenchResult {
  started_at: string;
  mode: 'quick' | 'full';
  machine: Record<string, unknown>;
  placement: string;
  server: { root: string; args: string; store?: string };
  calibrators: Record<string, { value: number; unit: string; details: Record<string, unknown> }>;
  scenarios: ScenarioResult[];
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The readable summary: calibrators, then one row per scenario. */
export function summaryTable(r: BenchResult): string {
  const lines = [
    `# amp-relay bench, ${r.mode}, ${r.started_at}`,
    '',
    `${String(r.machine.cpu)} × ${String(r.machine.cores)}, Node ${String(r.machine.node)}; ${r.placement}; server: ${r.server.root}${r.server.args ? ' ' + r.server.args : ''}${r.server.store === 'nats' ? '; store: lmdb, and nats for the rows marked nats' : ''}.`,
    '',
    '| calibrator | value | unit |',
    '|---|---:|---|',
    ...Object.entries(r.calibrators).map(([k, c]) => `| ${k} | ${fmt(c.value)} | ${c.unit} |`),
    '',
    '| scenario | value | unit | ratio | vs | p50 ms | p99 ms | p99.9 ms | target | errors |',
    '|---|---:|---|---:|---|---:|---:|---:|---|---:|',
    ...r.scenarios.map((s) =>
      [
        '',
        s.title,
        fmt(s.value, s.value < 100 ? 2 : 0),
        s.unit,
        s.ratio === undefined ? '–' : s.ratio.toFixed(2),
        s.calibrator ?? '–',
        fmt(s.latency?.p50_ms, 3),
        fmt(s.latency?.p99_ms, 3),
        fmt(s.latency?.p999_ms, 3),
        s.target ?? '–',
        String(s.errors),
        '',
      ]
        .join(' | ')
        .trim(),
    ),
  ];
  const notes = r.scenarios.flatMap((s) => s.notes.map((n) => `- ${s.title}: ${n}`));
  if (notes.length > 0) lines.push('', 'Notes:', ...notes);
  return lines.join('\n') + '\n';
}

/** Write `<dir>/<stamp>-<mode>.json` and `.md`; returns their paths. */
export function writeResults(dir: string, r: BenchResult): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = r.started_at.replace(/[:.]/g, '-');
  const json = join(dir, `${stamp}-${r.mode}.json`);
  const md = join(dir, `${stamp}-${r.mode}.md`);
  writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  writeFileSync(md, summaryTable(r));
  return { json, md };
}
