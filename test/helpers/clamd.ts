// A real clamd (Debian's clamav-daemon) for the tests: its own temp dir with a minimal config, a
// unix socket (and, when asked, a loopback TCP port) and a one-signature database the tests write,
// so it needs no internet and no freshclam. Start once per test file (beforeAll): it is ready in
// well under a second with one signature.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clamdPing } from '../../src/attachments/scan/clamd.js';

/**
 * The EICAR test string, assembled here so that this source file is not itself flagged by a
 * virus scanner on a developer's machine.
 */
export const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join('');

/** The name of the signature in our database; clamd reports it as `Amp.Test.EICAR.UNOFFICIAL`. */
export const EICAR_SIGNATURE = 'Amp.Test.EICAR';

const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 50;
const STOP_TIMEOUT_MS = 10_000;

export interface ClamdHandle {
  /** The unix socket clamd listens on. */
  socket: string;
  /** The loopback TCP port, when started with `{ tcp: true }`. */
  port?: number;
  /** The temp dir holding config, database, socket and log. */
  dir: string;
  /** PID of the running clamd (undefined while stopped). */
  pid: number | undefined;
  /** How long the last start took until clamd answered PING (ms). */
  startupMs: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** stop() and remove the temp dir. */
  close(): Promise<void>;
}

export function clamdBinary(): string {
  for (const p of ['/usr/sbin/clamd', '/usr/local/sbin/clamd']) if (existsSync(p)) return p;
  return 'clamd';
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * The smallest config for clamd run by whoever runs the tests: no `User` line (clamd then stays the
 * user that started it, root in CI or a developer; `User` only works when started as root), no
 * syslog, everything (socket, pid file, temp files, database, log) inside `dir`.
 */
function writeConfig(dir: string, port: number | undefined, streamMaxLength: string | undefined): string {
  const db = join(dir, 'db');
  mkdirSync(db);
  const hex = Buffer.from(EICAR, 'latin1').toString('hex');
  writeFileSync(join(db, 'eicar.ndb'), `${EICAR_SIGNATURE}:0:*:${hex}\n`);
  const lines = [
    `LocalSocket ${join(dir, 'clamd.sock')}`,
    'LocalSocketMode 600',
    'Foreground yes',
    `DatabaseDirectory ${db}`,
    `TemporaryDirectory ${dir}`,
    `PidFile ${join(dir, 'clamd.pid')}`,
    `LogFile ${join(dir, 'clamd.log')}`,
    'LogSyslog no',
    // No reload checks while the tests run.
    'SelfCheck 0',
    ...(port ? ['TCPAddr 127.0.0.1', `TCPSocket ${port}`] : []),
    ...(streamMaxLength ? [`StreamMaxLength ${streamMaxLength}`] : []),
  ];
  const conf = join(dir, 'clamd.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return conf;
}

/**
 * Starts clamd in a fresh temp dir and waits until it answers PING (bounded). `tcp` adds a loopback
 * TCP port beside the socket; `streamMaxLength` (clamd syntax, e.g. '25M') caps INSTREAM.
 */
export async function startClamd(opts: { tcp?: boolean; streamMaxLength?: string } = {}): Promise<ClamdHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'amp-clamd-'));
  const port = opts.tcp ? await freePort() : undefined;
  const conf = writeConfig(dir, port, opts.streamMaxLength);
  const socket = join(dir, 'clamd.sock');
  let child: ChildProcess | undefined;
  let output = '';

  const handle: ClamdHandle = {
    socket,
    port,
    dir,
    pid: undefined,
    startupMs: 0,
    async start() {
      if (child) return;
      const t0 = performance.now();
      output = '';
      const c = spawn(clamdBinary(), ['--foreground', `--config-file=${conf}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      handle.pid = c.pid;
      const keep = (d: Buffer) => void (output = (output + d.toString()).slice(-4000));
      c.stdout!.on('data', keep);
      c.stderr!.on('data', keep);
      c.on('error', (err) => keep(Buffer.from(`\n${clamdBinary()}: ${err.message} (is clamav-daemon installed?)`)));
      c.on('exit', () => {
        if (child === c) (child = undefined), (handle.pid = undefined);
      });
      await waitReady(c, socket, () => output);
      handle.startupMs = performance.now() - t0;
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return void (child = undefined);
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
    async close() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await handle.start();
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/** Polls PING until PONG, failing at once if clamd exits, and after READY_TIMEOUT_MS at the latest. */
async function waitReady(c: ChildProcess, socket: string, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) {
      throw new Error(`clamd exited (${c.exitCode ?? c.signalCode}) before answering PING:\n${output()}`);
    }
    if (await clamdPing({ socket }, 1000)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  c.kill('SIGKILL');
  throw new Error(`clamd did not answer PING within ${READY_TIMEOUT_MS} ms:\n${output()}`);
}
