// Processes of a bench run: the real server (`amp-relay serve`, the built CLI) as a child process
// on its own core, calibrator children, RSS readings. Only processes started here are ended, by PID.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

/** CPU placement: the server (and its libuv pool) on one core, the load on the other. */
export interface Placement {
  server: string | undefined;
  load: string | undefined;
  note: string;
}

export function placement(pin: boolean, cores: number): Placement {
  const taskset = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
  if (!pin) return { server: undefined, load: undefined, note: 'not pinned (--no-pin)' };
  if (cores < 2) return { server: undefined, load: undefined, note: 'one core: server and load share it' };
  if (!taskset) return { server: undefined, load: undefined, note: 'taskset not found: not pinned' };
  return {
    server: String(cores - 1),
    load: Array.from({ length: cores - 1 }, (_, i) => i).join(','),
    note: `server on core ${cores - 1}, load on core(s) 0-${cores - 2}`,
  };
}

/** Antivirus settings of the server: never inherited from the caller's shell (the bench sets them). */
const CLAMD_ENV = ['AMP_CLAMD_SOCKET', 'AMP_CLAMD_HOST'];

/** Spawn `node ARGS` under taskset when a core list is given; AMP_CLAMD_* only as given in `env`. */
export function spawnNode(args: string[], cores: string | undefined, env: Record<string, string> = {}): ChildProcess {
  const full: Record<string, string | undefined> = { ...process.env };
  for (const name of CLAMD_ENV) delete full[name];
  Object.assign(full, env);
  return cores === undefined
    ? spawn(process.execPath, args, { cwd: ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('taskset', ['-c', cores, process.execPath, ...args], {
        cwd: ROOT,
        env: full,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
}

export interface BenchServer {
  url: string;
  api: string;
  wsUrl: string;
  pid: number;
  dataDir: string;
  /** Resident set size of the server process, in bytes. */
  rss(): number;
  /** CPU seconds (user + system, all threads) the server has used so far. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** The server as users run it, with rate limits off and a queue cap large enough for a backlog. */
export interface ServerOptions {
  /** Write a V8 CPU profile of the server here (node --cpu-prof). */
  profileDir?: string;
  /** More `amp-relay serve` flags. */
  extraArgs?: string[];
  /** Another built checkout to run the server from (a baseline); default this one. */
  serverRoot?: string;
  /** Environment for the server on top of this process's (AMP_CLAMD_* are unset unless given here). */
  env?: Record<string, string>;
  /** Listen on this port (default 0: any free one), for servers that must name each other first. */
  port?: number;
  /** A data dir made (and filled) by the caller; removed at stop() like a fresh one. */
  dataDir?: string;
  /** Append the server's log (stdout and stderr) to this file. */
  logFile?: string;
}

export async function startBenchServer(cores: string | undefined, opts: ServerOptions = {}): Promise<BenchServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'amp-bench-'));
  const nodeArgs = opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir] : [];
  const args = [
    ...nodeArgs,
    join(opts.serverRoot ?? ROOT, 'bin', 'amp-relay.js'),
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(opts.port ?? 0),
    '--data-dir',
    dataDir,
    '--log-level',
    'info',
    '--rate-limits',
    'off',
    '--max-queue',
    '2000000',
    ...(opts.extraArgs ?? []),
  ];
  // Info level, the default: the 'listening' line gives the port; each REST request is a log line (as
  // in production), WebSocket frames are not.
  const proc = spawnNode(args, cores, opts.env);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  if (opts.logFile) {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
  }
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)),
      START_TIMEOUT_MS,
    );
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'listening' && rec.url) {
          clearTimeout(timer);
          resolve(rec.url);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening: ${stderr}`));
    });
  });
  const pid = proc.pid!;
  return {
    url,
    api: `${url}/api/v1`,
    wsUrl: url.replace(/^http/, 'ws') + '/v1/ws',
    pid,
    dataDir,
    rss: () => rssOf(pid),
    cpuSeconds: () => cpuSecondsOf(pid),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** VmRSS of a process in bytes (Linux /proc); 0 where /proc is not there. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The parts of a process's RSS, in bytes: anonymous memory (the JS heap, buffers, native
 * allocations) and file pages (mapped files: LMDB's data file is mapped, so the pages of it the
 * server touched count here, and the kernel drops them under memory pressure).
 */
export function rssPartsOf(pid: number): { anon: number; file: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
  } catch {
    return { anon: 0, file: 0 };
  }
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ, 100 on Linux

/** utime + stime of a process from /proc/PID/stat, in seconds; 0 where /proc is not there. */
export function cpuSecondsOf(pid: number): number {
  return statSeconds(`/proc/${pid}/stat`);
}

/**
 * Milliseconds the main thread has spent runnable but waiting for a core (the second field of
 * /proc/PID/task/PID/schedstat, in ns); 0 where the kernel does not keep it.
 */
function mainThreadWaitMsOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

/** The same for its main thread alone (the event loop), /proc/PID/task/PID/stat. */
function mainThreadSecondsOf(pid: number): number {
  return statSeconds(`/proc/${pid}/task/${pid}/stat`);
}

function statSeconds(path: string): number {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** CPU seconds per thread name (main thread 'node', libuv pool 'libuv-worker', lmdb's writer...). */
function threadSecondsOf(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

export interface CpuUse {
  server_cpu_pct: number;
  load_cpu_pct: number;
  /** The server's CPU by thread name, in % of one core. */
  server_threads_pct: Record<string, number>;
  /** The server's main thread (its event loop), in % of one core. */
  server_main_thread_pct: number;
  /** How long the main thread was ready to run but waited for a core (run-queue wait), ms. */
  server_main_thread_wait_ms: number;
}

/** CPU use of the server and of this (load) process over a stretch of time, in % of one core. */
export function cpuMeter(server: BenchServer): () => CpuUse {
  const t0 = performance.now();
  const s0 = server.cpuSeconds();
  const th0 = threadSecondsOf(server.pid);
  const m0 = mainThreadSecondsOf(server.pid);
  const w0 = mainThreadWaitMsOf(server.pid);
  const l0 = process.cpuUsage();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const l = process.cpuUsage(l0);
    const threads: Record<string, number> = {};
    for (const [name, secs] of threadSecondsOf(server.pid)) {
      const pct = Math.round((100 * (secs - (th0.get(name) ?? 0))) / wall);
      if (pct > 0) threads[name] = pct;
    }
    return {
      server_cpu_pct: Math.round((100 * (server.cpuSeconds() - s0)) / wall),
      load_cpu_pct: Math.round((l.user + l.system) / 1e4 / wall),
      server_threads_pct: threads,
      server_main_thread_pct: Math.round((100 * (mainThreadSecondsOf(server.pid) - m0)) / wall),
      server_main_thread_wait_ms: Math.round(mainThreadWaitMsOf(server.pid) - w0),
    };
  };
}

/** Run a child to completion and parse the JSON it prints on its last stdout line. */
export async function runJsonChild<T>(args: string[], cores: string | undefined, timeoutMs: number): Promise<T> {
  const proc = spawnNode(args, cores);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${err}`);
  const last = out.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}
