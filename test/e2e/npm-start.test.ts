// `npm start` under a supervisor: SIGTERM to the npm process (what systemd, docker stop or a process
// manager sends) must stop the server, not orphan it still listening. The README's "Run it" block runs
// `npm ci && npm start`; this file runs its `npm start` part as written (npm ci is what CI has just done).
//
// The server's PID is read from the data dir lock (amp-relay.lock holds it), its port from the
// "listening" log line. A process that is not our child has no exit event, so "gone" is polled with a
// deadline: kill(pid, 0) fails with ESRCH (a zombie counts as gone).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, tempDir } from '../helpers/server.js';

const LISTEN_TIMEOUT_MS = 60_000; // prestart may compile TypeScript first
const GONE_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

interface Started {
  npm: ChildProcess;
  npmExit: Promise<{ code: number | null; signal: string | null }>;
  /** npm's output is all read: npm has exited and every process holding its pipes (the server) too. */
  npmClosed: Promise<void>;
  nodePid: number;
  port: number;
  log: string[];
}

const started: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  // Kill what is left of the process groups we started (npm is a group leader: detached).
  for (const p of started.splice(0)) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The `npm start` line of the README's Run-it block, split into a command and its arguments. */
function npmStartFromReadme(): string[] {
  const line = readmeBlock('run-it')
    .split('\n')
    .find((l) => l.includes('npm start'));
  expect(line, 'the run-it block has an npm start line').toBeDefined();
  const cmd = /npm start/.exec(line!)![0];
  return cmd.split(' ');
}

async function npmStart(argv = npmStartFromReadme()): Promise<Started> {
  const work = tempDir('amp-npm-start-');
  dirs.push(work);
  const dataDir = join(work, 'data');
  const [bin, ...args] = argv;
  const npm = spawn(bin, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: work,
      npm_config_update_notifier: 'false',
      npm_config_offline: 'true', // npx finds the repo's own bin; never the registry
      AMP_HOST: '127.0.0.1',
      AMP_PORT: '0',
      AMP_DATA_DIR: dataDir,
    },
  });
  started.push(npm);
  const npmExit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    npm.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const npmClosed = new Promise<void>((resolve) => npm.on('close', () => resolve()));
  const log: string[] = [];
  let stderr = '';
  npm.stderr!.on('data', (d) => (stderr += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" line in ${LISTEN_TIMEOUT_MS} ms: ${stderr}`)),
      LISTEN_TIMEOUT_MS,
    );
    createInterface({ input: npm.stdout! }).on('line', (line) => {
      log.push(line);
      const m = /"url":"http:\/\/127\.0\.0\.1:(\d+)".*"msg":"listening"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void npmExit.then((e) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited (${e.code ?? e.signal}) before listening: ${stderr}\n${log.join('\n')}`));
    });
  });
  const nodePid = Number(readFileSync(join(dataDir, 'amp-relay.lock'), 'utf8').trim().split(/\s+/)[0]);
  expect(nodePid).toBeGreaterThan(1);
  expect(nodePid).not.toBe(npm.pid);
  return { npm, npmExit, npmClosed, nodePid, port, log };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  // A zombie has exited; it only waits for its new parent to reap it.
  return !(existsSync(stat) && /^\d+ \(.*\) Z/.test(readFileSync(stat, 'utf8')));
}

async function gone(pid: number): Promise<boolean> {
  const deadline = Date.now() + GONE_TIMEOUT_MS;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

function portClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

describe('npm start under a supervisor', () => {
  it('SIGTERM to npm stops the server gracefully: process gone, port closed, npm exits 0', async () => {
    const s = await npmStart();
    expect(await portClosed(s.port)).toBe(false);
    process.kill(s.npm.pid!, 'SIGTERM');
    const exit = await s.npmExit;
    expect(await gone(s.nodePid), `server ${s.nodePid} still running after npm got SIGTERM`).toBe(true);
    expect(await portClosed(s.port)).toBe(true);
    await s.npmClosed; // the server's last log lines may still be in the pipe when npm's exit is seen
    // The server got the signal itself and shut down cleanly (npm forwards SIGTERM to its child).
    expect(s.log.some((l) => /"signal":"SIGTERM".*"msg":"shutting down"/.test(l))).toBe(true);
    expect(s.log.some((l) => /"msg":"stopped"/.test(l))).toBe(true);
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('an npm killed with SIGKILL (no forwarding) still takes the server down', async () => {
    const s = await npmStart();
    process.kill(s.npm.pid!, 'SIGKILL');
    await s.npmExit;
    const down = await gone(s.nodePid);
    expect(down, `server ${s.nodePid} orphaned after npm was killed; its log:\n${s.log.join('\n')}`).toBe(true);
    expect(await portClosed(s.port)).toBe(true);
  });

  it('`npx amp-relay serve` ends with its npx too (npm exec does not forward the signal)', async () => {
    const s = await npmStart(['npx', 'amp-relay', 'serve']);
    process.kill(s.npm.pid!, 'SIGTERM');
    await s.npmExit;
    const down = await gone(s.nodePid);
    expect(down, `server ${s.nodePid} orphaned after npx got SIGTERM; its log:\n${s.log.join('\n')}`).toBe(true);
    expect(await portClosed(s.port)).toBe(true);
  });
});
