// Scenario 7: attachments against the real server (spec §22). An agent (one per size) uploads
// files one at a time (init → PUT of the bytes to the signed upload_url → confirm → status polled until the scan is
// done) and downloads each twice (GET /attachments/{id}/download with the API key, and the
// capability `url` without one), 1 MiB and 25 MiB files. Then /health is probed every 2 ms from a
// keep-alive connection: a baseline window with nothing else going on, then while a 25 MiB
// text/plain file (the scanner's most work: the text checks run over every byte) is scanned.

import { registerMany, type BenchAgent } from '../lib/client.js';
import { median, mibPerSecond, MIB } from '../lib/disk.js';
import { binaryFile, sha256Digest, textFile, type BenchFile } from '../lib/files.js';
import { cpuMeter, type BenchServer, type CpuUse } from '../lib/proc.js';
import { Latency } from '../lib/hist.js';
import { Phases, ProbeChild, type PhaseStats } from '../lib/prober.js';
import { progress, type ScenarioResult } from '../lib/report.js';

const REQUEST_TIMEOUT_MS = 120_000;
/** Status polls while timing init → scan done (the figure is this coarse). */
const THROUGHPUT_POLL_MS = 10;
/** Status polls while /health is measured: modest, so the polls are not the load. */
const PROBE_POLL_MS = 50;
/** A scan that takes longer than this is reported as a failure (clamd retries can take long). */
const SCAN_TIMEOUT_MS = 120_000;
const PROBE_MAX_OUTSTANDING = 1000;
/** Between the PUT and the confirm in the /health part (probes then are not kept). */
const SETTLE_MS = 1000;
/** /health probes before the first baseline window (not kept): connection and JIT settle. */
const PROBE_WARMUP_MS = 500;
const TERMINAL = new Set(['clean', 'basic_clean', 'suspicious', 'rejected', 'unscanned']);

export interface AttachmentOptions {
  label: string;
  sizes: { bytes: number; count: number }[];
  /** 25 MiB text files scanned while /health is probed, one after the other. */
  scans: number;
  scanBytes: number;
  baselineSeconds: number;
  probeIntervalMs: number;
  /** true when the server runs with clamd: clean files end `clean`, else `basic_clean`. */
  av: boolean;
  /** Cores for the /health prober's child process (taskset -c), the load's; undefined: not pinned. */
  probeCores?: string;
}

interface StatusDoc {
  attachment_id: string;
  scan_status: string;
  url?: string;
  size?: number;
  digest?: string;
}

export interface UploadTiming {
  put_ms: number;
  total_ms: number;
  scan_ms: number;
  scan_status: string;
}

export interface SizeOutcome {
  bytes: number;
  uploads: UploadTiming[];
  download_ms: number[];
  url_ms: number[];
  upload_cpu?: CpuUse;
}

/** Failures and remarks of the whole scenario, shared by its clients. */
interface Tally {
  errors: number;
  notes: string[];
  rewrites: number;
}

class Api {
  constructor(
    readonly server: BenchServer,
    private readonly agent: BenchAgent,
    readonly tally: Tally = { errors: 0, notes: [], rewrites: 0 },
  ) {}

  get notes(): string[] {
    return this.tally.notes;
  }

  fail(what: string): void {
    this.tally.errors++;
    if (this.tally.notes.length < 20) this.tally.notes.push(what);
  }

  /** A URL the server gave us, pointed at the server we started (loopback only, whatever the Host). */
  local(u: string): string {
    const url = new URL(u);
    const origin = new URL(this.server.url);
    if (url.host !== origin.host || url.protocol !== origin.protocol) {
      if (this.tally.rewrites++ === 0) this.notes.push(`server URLs name ${url.origin}; sent to ${origin.origin}`);
      url.protocol = origin.protocol;
      url.host = origin.host;
    }
    return url.toString();
  }

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.server.api}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.agent.apiKey}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = { raw: text.slice(0, 200) };
    }
    return { status: res.status, json };
  }

  /** init; returns the id and the (local) upload URL. */
  async init(f: BenchFile): Promise<{ id: string; uploadUrl: string }> {
    const r = await this.call('POST', '/attachments/upload', {
      filename: f.filename,
      content_type: f.contentType,
      size: f.bytes.length,
      digest: f.digest,
    });
    if (r.status !== 201 && r.status !== 200)
      throw new Error(`upload init answered ${r.status} ${JSON.stringify(r.json)}`);
    return { id: r.json.attachment_id, uploadUrl: this.local(r.json.upload_url) };
  }

  async put(uploadUrl: string, f: BenchFile): Promise<void> {
    const res = await fetch(uploadUrl, {
      method: 'PUT',
      headers: { 'Content-Type': f.contentType },
      body: f.bytes,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    if (res.status !== 200 && res.status !== 201) throw new Error(`PUT answered ${res.status} ${text.slice(0, 200)}`);
  }

  async confirm(id: string): Promise<string> {
    const r = await this.call('POST', `/attachments/${id}/confirm`);
    if (r.status !== 200) throw new Error(`confirm answered ${r.status} ${JSON.stringify(r.json)}`);
    return r.json.scan_status;
  }

  /** Poll the status every `pollMs` until it leaves `pending` (bounded by SCAN_TIMEOUT_MS). */
  async scanned(id: string, pollMs: number): Promise<StatusDoc> {
    const end = performance.now() + SCAN_TIMEOUT_MS;
    for (;;) {
      const r = await this.call('GET', `/attachments/${id}`);
      if (r.status !== 200) throw new Error(`status answered ${r.status} ${JSON.stringify(r.json)}`);
      const doc = r.json as StatusDoc;
      if (TERMINAL.has(doc.scan_status)) return doc;
      if (performance.now() > end) throw new Error(`${id} still ${doc.scan_status} after ${SCAN_TIMEOUT_MS} ms`);
      await new Promise((res) => setTimeout(res, pollMs));
    }
  }

  /** GET the bytes; the time is to the last byte; the digest is checked afterwards (not timed). */
  async download(url: string, withKey: boolean, size: number, digest: string): Promise<number | undefined> {
    const t0 = performance.now();
    const res = await fetch(url, {
      headers: withKey ? { Authorization: `Bearer ${this.agent.apiKey}` } : {},
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = Buffer.from(await res.arrayBuffer());
    const ms = performance.now() - t0;
    const how = withKey ? 'download' : 'url';
    if (res.status !== 200) this.fail(`${how} answered ${res.status} ${body.subarray(0, 200).toString()}`);
    else if (body.length !== size) this.fail(`${how}: ${body.length} bytes, expected ${size}`);
    else if (sha256Digest(body) !== digest) this.fail(`${how}: digest differs from the upload's`);
    else return ms;
    return undefined;
  }
}

interface Marks {
  /** Called before the PUT. */
  put?: () => void;
  /** Awaited before the confirm: its time is left out of total_ms. */
  confirm?: () => Promise<void> | void;
}

/** init → PUT → confirm → scanned, timed (scan_ms: from the confirm to a terminal status). */
async function uploadOne(api: Api, f: BenchFile, pollMs: number, marks: Marks) {
  const t0 = performance.now();
  const { id, uploadUrl } = await api.init(f);
  marks.put?.();
  const t1 = performance.now();
  await api.put(uploadUrl, f);
  const t2 = performance.now();
  await marks.confirm?.();
  const tc = performance.now();
  const first = await api.confirm(id);
  const doc = TERMINAL.has(first) ? await api.scanned(id, 0) : await api.scanned(id, pollMs);
  const t3 = performance.now();
  const timing: UploadTiming = {
    put_ms: +(t2 - t1).toFixed(2),
    total_ms: +(t3 - t0 - (tc - t2)).toFixed(2),
    scan_ms: +(t3 - tc).toFixed(2),
    scan_status: doc.scan_status,
  };
  return { id, doc, timing };
}

/** Upload `count` random binary files of `bytes` each, one at a time, then download each twice. */
async function sizeClass(api: Api, bytes: number, count: number, want: string, tick: (s: string) => void) {
  const out: SizeOutcome = { bytes, uploads: [], download_ms: [], url_ms: [] };
  const kept: { id: string; url?: string; digest: string }[] = [];
  for (let i = 0; i < count; i++) {
    const f = binaryFile(bytes, `bench-${bytes}-${i}`);
    tick(`upload ${i + 1}/${count} of ${bytes / MIB} MiB`);
    try {
      const r = await uploadOne(api, f, THROUGHPUT_POLL_MS, {});
      out.uploads.push(r.timing);
      if (r.doc.scan_status !== want) api.fail(`${r.id}: scan_status ${r.doc.scan_status}, expected ${want}`);
      kept.push({ id: r.id, url: r.doc.url, digest: f.digest });
    } catch (e) {
      api.fail(`upload of ${bytes} bytes: ${(e as Error).message}`);
    }
  }
  for (const [i, k] of kept.entries()) {
    tick(`download ${i + 1}/${kept.length} of ${bytes / MIB} MiB`);
    const ms = await api.download(`${api.server.api}/attachments/${k.id}/download`, true, bytes, k.digest);
    if (ms !== undefined) out.download_ms.push(+ms.toFixed(2));
    if (!k.url) {
      api.fail(`${k.id}: no url in the status document`);
      continue;
    }
    const ms2 = await api.download(api.local(k.url), false, bytes, k.digest);
    if (ms2 !== undefined) out.url_ms.push(+ms2.toFixed(2));
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * /health every `probeIntervalMs` over one keep-alive connection, in phases: `baseline` (nothing
 * else running), `upload` (init + PUT of the text file), `scan` (from confirm until the status
 * leaves pending). The text files are made before the prober starts, so the load is idle meanwhile.
 */
async function probeScans(api: Api, o: AttachmentOptions, want: string, tick: (s: string) => void) {
  const files = Array.from({ length: o.scans }, (_, i) => textFile(o.scanBytes, `bench-scan-${i}`));
  // Each scan: its baseline, the upload and the scan (each bounded by SCAN_TIMEOUT_MS), the settle.
  const perScan = o.baselineSeconds + (2 * SCAN_TIMEOUT_MS + SETTLE_MS) / 1000;
  const maxSeconds = o.scans * perScan + o.baselineSeconds + 10;
  const opts = { intervalMs: o.probeIntervalMs, maxOutstanding: PROBE_MAX_OUTSTANDING, maxSeconds };
  const phases = new Phases();
  const scans: UploadTiming[] = [];
  const scanCpu: CpuUse[] = [];
  const baselineCpu: CpuUse[] = [];
  // Warmed up: the child's connection is up and has been answered before the first baseline.
  const child = await ProbeChild.start(`${api.server.api}/health`, opts, o.probeCores);
  let probed: Awaited<ReturnType<ProbeChild['stop']>> | undefined;
  try {
    await sleep(PROBE_WARMUP_MS);
    for (const [i, f] of files.entries()) {
      tick(`baseline ${i + 1}/${files.length}`);
      phases.set('baseline');
      const base = cpuMeter(api.server);
      await sleep(o.baselineSeconds * 1000);
      baselineCpu.push(base());
      let cpu: (() => CpuUse) | undefined;
      try {
        const r = await uploadOne(api, f, PROBE_POLL_MS, {
          put: () => {
            tick(`upload + scan ${i + 1}/${files.length}`);
            phases.set('upload');
          },
          confirm: async () => {
            // The PUT's probes (queued behind it on the prober's one connection) drain first, so
            // that the scan window starts clean; the scan starts at the confirm.
            phases.set(undefined);
            await sleep(SETTLE_MS);
            phases.set('scan');
            cpu = cpuMeter(api.server);
          },
        });
        phases.set(undefined);
        if (cpu) scanCpu.push(cpu());
        scans.push(r.timing);
        if (r.doc.scan_status !== want) api.fail(`${r.id}: scan_status ${r.doc.scan_status}, expected ${want}`);
      } catch (e) {
        phases.set(undefined);
        api.fail(`scan upload: ${(e as Error).message}`);
      }
    }
    // One more baseline window after the last scan, so that the baseline is not all "before".
    tick('baseline (last)');
    phases.set('baseline');
    await sleep(o.baselineSeconds * 1000);
    phases.set(undefined);
  } finally {
    probed = await child.stop();
  }
  if (probed.lastError) api.notes.push(`last /health error: ${probed.lastError}`);
  return { phases: phases.file(probed.samples, probed.skipped), scans, scanCpu, baselineCpu };
}

export interface AttachmentOutcome {
  sizes: SizeOutcome[];
  /** The /health samples by phase: baseline, upload, scan. */
  phases: Map<string, { hist: Latency; stats: PhaseStats }>;
  scans: UploadTiming[];
  scan_cpu: CpuUse[];
  /** The same over the baseline windows before each scan. */
  baseline_cpu: CpuUse[];
  errors: number;
  notes: string[];
}

export async function attachments(server: BenchServer, o: AttachmentOptions): Promise<AttachmentOutcome> {
  // An agent for each part (each size, the scans), so that no agent nears the server's quota of
  // unsent attachments (MAX_OPEN_* in src/attachments/service.ts: 100 files, 256 MiB).
  const agents = await registerMany(server.api, 'att', o.sizes.length + 1);
  const api = new Api(server, agents[0]!);
  const apiFor = (i: number) => (i === 0 ? api : new Api(server, agents[i]!, api.tally));
  const info = await fetch(`${server.api}/info`).then((r) => r.json() as Promise<Record<string, any>>);
  if (!info.attachment_limits)
    throw new Error(`${o.label}: the server's /info has no attachment_limits (a build without attachments?)`);
  if (Boolean(info.attachment_limits.av_scanning) !== o.av)
    api.notes.push(`av_scanning is ${String(info.attachment_limits.av_scanning)} in /info`);
  const want = o.av ? 'clean' : 'basic_clean';
  let state = 'starting';
  const stop = progress(o.label, () => state);
  const tick = (s: string) => (state = s);
  try {
    const sizes: SizeOutcome[] = [];
    for (const [i, s] of o.sizes.entries()) sizes.push(await sizeClass(apiFor(i), s.bytes, s.count, want, tick));
    const p = await probeScans(apiFor(o.sizes.length), o, want, tick);
    return {
      sizes,
      phases: p.phases,
      scans: p.scans,
      scan_cpu: p.scanCpu,
      baseline_cpu: p.baselineCpu,
      errors: api.tally.errors,
      notes: api.notes,
    };
  } finally {
    stop();
  }
}

/** One line on the scans: how long, and whose CPU (the event loop's, or the scanner's). */
function scanNote(out: AttachmentOutcome, baselineSeconds: number): string {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const mean = (xs: number[]) => (xs.length ? Math.round(sum(xs) / xs.length) : 0);
  const ms = out.scans.map((s) => s.scan_ms);
  const all = mean(out.scan_cpu.map((c) => c.server_cpu_pct));
  const main = mean(out.scan_cpu.map((c) => c.server_main_thread_pct));
  const baseMain = mean(out.baseline_cpu.map((c) => c.server_main_thread_pct));
  // Run-queue wait of the event loop, in ms per second of window: time it was ready but had no core.
  const wait = (cs: CpuUse[], secs: number) =>
    secs > 0 ? Math.round(sum(cs.map((c) => c.server_main_thread_wait_ms)) / secs) : 0;
  const scanWait = wait(out.scan_cpu, sum(ms) / 1000);
  const baseWait = wait(out.baseline_cpu, out.baseline_cpu.length * baselineSeconds);
  return (
    `${out.scans.length} scan(s), median ${median(ms).toFixed(0)} ms (confirm → status done); server CPU meanwhile ` +
    `${all} % of a core, of which its main thread (the event loop) ${main} % (${baseMain} % in the baseline ` +
    `windows); the event loop waited for a core ${scanWait} ms per second (baseline: ${baseWait} ms/s)`
  );
}

const sizeName = (bytes: number) => `${Math.round(bytes / MIB)}mib`;
/** The calibrator a size class is quoted against (run.ts measures one per size). */
export const diskCalibrator = (bytes: number) => `disk_fsync_write_${sizeName(bytes)}`;

const mibs = (bytes: number, ms: number[]) => mibPerSecond(bytes, median(ms));
const spread = (ms: number[]) => ({
  median_ms: +median(ms).toFixed(2),
  min_ms: ms.length ? Math.min(...ms) : 0,
  max_ms: ms.length ? Math.max(...ms) : 0,
  files: ms.length,
});

/** The result rows of scenario 7; `disk` maps a calibrator name to its MiB/s. */
export function attachmentRows(out: AttachmentOutcome, disk: Record<string, number>, o: AttachmentOptions) {
  const rows: ScenarioResult[] = [];
  const ratio = (v: number, c: number | undefined) => (c ? +(v / c).toFixed(3) : undefined);
  const row = (r: Omit<ScenarioResult, 'errors' | 'notes'>) => rows.push({ ...r, errors: 0, notes: [] });
  for (const s of out.sizes) {
    const n = Math.round(s.bytes / MIB);
    const cal = diskCalibrator(s.bytes);
    const put = s.uploads.map((u) => u.put_ms);
    const total = s.uploads.map((u) => u.total_ms);
    const common = { unit: 'MiB/s', calibrator: cal };
    const base = `7 attachment ${n} MiB`;
    row({
      name: `att_put_${sizeName(s.bytes)}`,
      title: `${base}: upload PUT`,
      value: mibs(s.bytes, put),
      ...common,
      ratio: ratio(mibs(s.bytes, put), disk[cal]),
      details: { ...spread(put), bytes: s.bytes },
    });
    row({
      name: `att_upload_scanned_${sizeName(s.bytes)}`,
      title: `${base}: init → scan done`,
      value: mibs(s.bytes, total),
      ...common,
      ratio: ratio(mibs(s.bytes, total), disk[cal]),
      details: { ...spread(total), scan_ms: spread(s.uploads.map((u) => u.scan_ms)), poll_ms: THROUGHPUT_POLL_MS },
    });
    row({
      name: `att_download_${sizeName(s.bytes)}`,
      title: `${base}: GET /download (API key)`,
      value: mibs(s.bytes, s.download_ms),
      unit: 'MiB/s',
      details: spread(s.download_ms),
    });
    row({
      name: `att_url_${sizeName(s.bytes)}`,
      title: `${base}: GET capability url`,
      value: mibs(s.bytes, s.url_ms),
      unit: 'MiB/s',
      details: spread(s.url_ms),
    });
  }
  const phase = (name: string) =>
    out.phases.get(name) ?? {
      hist: new Latency(),
      stats: { samples: 0, errors: 0, skipped: 0, seconds: 0, windows: [] },
    };
  const b = phase('baseline').hist.summary();
  const sc = phase('scan').hist.summary();
  const probeDetails = (name: string) => ({ interval_ms: o.probeIntervalMs, ...phase(name).stats });
  row({
    name: 'att_health_baseline',
    title: `7 /health every ${o.probeIntervalMs} ms, no scan: p99`,
    value: b.p99_ms,
    unit: 'ms',
    latency: b,
    details: { ...probeDetails('baseline'), server_cpu: out.baseline_cpu },
  });
  row({
    name: 'att_health_scan',
    title: `7 /health every ${o.probeIntervalMs} ms, ${Math.round(o.scanBytes / MIB)} MiB text scanned: p99`,
    value: sc.p99_ms,
    unit: 'ms',
    calibrator: 'att_health_baseline p99',
    ratio: ratio(sc.p99_ms, b.p99_ms),
    latency: sc,
    details: {
      ...probeDetails('scan'),
      scans: out.scans,
      server_cpu: out.scan_cpu,
      during_upload: { ...phase('upload').hist.summary(), ...phase('upload').stats },
      poll_ms: PROBE_POLL_MS,
    },
  });
  rows.at(-1)!.notes.push(scanNote(out, o.baselineSeconds));
  // Failures anywhere in the scenario are counted on its first row.
  rows[0]!.errors = out.errors;
  rows[0]!.notes = out.notes;
  return rows;
}
