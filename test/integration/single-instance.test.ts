// One server per port and per data dir (issue 13 item 3). uWS listens with SO_REUSEPORT unless told
// otherwise, and LMDB lets two processes open one environment: without the checks a second server
// starts, and requests alternate between two servers with different in-memory state.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startServer, type StartOptions } from '../../src/server.js';
import { call, ROOT, spawnServer, startTestServer, tempDir, type ChildServer } from '../helpers/server.js';

const SERVE_OUTCOME_TIMEOUT_MS = 20_000;

const children: ChildServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir('amp-single-');
  dirs.push(d);
  return d;
}

async function spawnTracked(dataDir: string): Promise<ChildServer> {
  const c = await spawnServer(dataDir);
  children.push(c);
  return c;
}

interface ServeOutcome {
  /** Exit code, or the signal that ended it. */
  code: number | string;
  stdout: string;
  stderr: string;
  /** It logged `listening` (and was then stopped with SIGTERM). */
  listened: boolean;
}

/** `amp-relay serve` until it exits by itself, or until it logs `listening` (then it gets SIGTERM). */
function serveOnce(args: string[]): Promise<ServeOutcome> {
  const argv = [join(ROOT, 'bin', 'amp-relay.js'), 'serve', '--host', '127.0.0.1', '--log-level', 'info', ...args];
  const proc = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let listened = false;
  proc.stderr.on('data', (d) => (stderr += d));
  proc.stdout.on('data', (d) => {
    stdout += d;
    if (!listened && stdout.includes('"msg":"listening"')) {
      listened = true;
      proc.kill('SIGTERM');
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve neither exited nor listened within ${SERVE_OUTCOME_TIMEOUT_MS} ms: ${stderr}`));
    }, SERVE_OUTCOME_TIMEOUT_MS);
    // 'close': the process has exited and its output is read to the end.
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr, listened });
    });
  });
}

function start(dataDir: string, extra: StartOptions = {}) {
  return startServer({ host: '127.0.0.1', port: 0, logLevel: 'silent', env: {}, dataDir, ...extra });
}

describe('one server per port', () => {
  it('a second amp-relay serve on a port in use exits 1 and says the address is in use', async () => {
    const first = await spawnTracked(dir());
    const port = new URL(first.url).port;
    const second = await serveOnce(['--port', port, '--data-dir', dir()]);
    expect(second.listened).toBe(false);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`amp-relay: cannot listen on 127.0.0.1:${port}: the address is in use`);
    expect((await call('GET', `${first.api}/health`)).status).toBe(200);
  });

  it('startServer on a port this process listens on rejects and leaves its data dir unlocked', async () => {
    const first = await startTestServer();
    try {
      const other = dir();
      await expect(start(other, { port: first.server.port })).rejects.toThrow(
        `cannot listen on 127.0.0.1:${first.server.port}`,
      );
      expect(existsSync(join(other, 'amp-relay.lock'))).toBe(false);
      expect((await call('GET', `${first.api}/health`)).status).toBe(200);
    } finally {
      await first.close();
    }
  });
});

describe('one server per data dir', () => {
  it('a second amp-relay serve on a data dir in use exits 1 and names the PID that holds it', async () => {
    const dataDir = dir();
    const first = await spawnTracked(dataDir);
    const second = await serveOnce(['--port', '0', '--data-dir', dataDir]);
    expect(second.listened).toBe(false);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`is in use by process ${first.proc.pid}`);
    expect(readFileSync(join(dataDir, 'amp-relay.lock'), 'utf8').trim()).toBe(String(first.proc.pid));
  });

  it('takes over the lock of a server killed with -9 (with a warning) and removes it on exit', async () => {
    const dataDir = dir();
    const killed = await spawnTracked(dataDir);
    expect(await killed.stop('SIGKILL')).toBe('SIGKILL');
    const lock = join(dataDir, 'amp-relay.lock');
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(killed.proc.pid));
    const next = await serveOnce(['--port', '0', '--data-dir', dataDir]);
    expect(next.listened).toBe(true);
    expect(next.code).toBe(0); // stopped by SIGTERM after `listening`
    const warning = next.stdout.split('\n').find((l) => l.includes('taking over a stale data dir lock'));
    expect(JSON.parse(warning!)).toMatchObject({ level: 40, pid: killed.proc.pid });
    expect(existsSync(lock)).toBe(false);
  });

  it('startServer twice on one data dir in one process: the second rejects until the first is closed', async () => {
    const dataDir = dir();
    const lock = join(dataDir, 'amp-relay.lock');
    const first = await start(dataDir);
    try {
      await expect(start(dataDir)).rejects.toThrow(`is in use by another server in this process (pid ${process.pid})`);
      expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    } finally {
      await first.close();
    }
    expect(existsSync(lock)).toBe(false);
    const again = await start(dataDir);
    expect(existsSync(lock)).toBe(true);
    await again.close();
  });

  it.each([
    ['names this process but no server here holds it (a restarted container reuses PIDs)', () => String(process.pid)],
    ['holds no PID (a crash between create and write)', () => ''],
  ])('takes over a lock file that %s, with a warning', async (_, content) => {
    const dataDir = dir();
    const lock = join(dataDir, 'amp-relay.lock');
    writeFileSync(lock, content());
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const s = await start(dataDir, { logger });
    try {
      expect(lines.map((l) => JSON.parse(l).msg)).toContain('taking over a stale data dir lock (its process is gone)');
      expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    } finally {
      await s.close();
    }
    expect(existsSync(lock)).toBe(false);
  });
});
