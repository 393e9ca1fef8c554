// A fresh clone before any build: `npx amp-relay keygen` compiles first (saying so on stderr, never
// on stdout) and then runs; a copy that cannot build (no scripts/ensure-built.mjs or no TypeScript,
// as an installed package) says in one line how to build, exit 1, no stack. The "clone" is the
// files git tracks (bin, scripts, src, proto, package.json, tsconfig.json) copied into a temp dir,
// so it is this working tree as a clone of it would be, with node_modules symlinked (no npm ci).
// Commands started at once build once (a lock in dist/): none loads a dist/ being written. A lock
// left by a former run (dead, reused or own PID) never makes a command wait; one being made is
// not stolen; another user running a root-owned clone with a current dist/ needs no lock.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/server.js';

const root = tempDir('amp-clone-');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const BUILD_TIMEOUT_MS = 150_000;
/** What a build of an unbuilt clone says on stderr: tsc, then the admin console. */
const BUILDING = 'amp-relay: compiling TypeScript (tsc)...\namp-relay: building the admin console (esbuild)...\n';

function cloneInto(dir: string): void {
  const tracked = execFileSync(
    'git',
    ['ls-files', '-z', 'bin', 'scripts', 'src', 'proto', 'package.json', 'tsconfig.json'],
    { cwd: ROOT, encoding: 'utf8' },
  )
    .split('\0')
    .filter(Boolean);
  for (const f of tracked) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}

const ENV = { PATH: process.env.PATH ?? '', HOME: root, npm_config_update_notifier: 'false' };

function npx(cwd: string, args: string[]) {
  const r = spawnSync('npx', ['--no-install', 'amp-relay', ...args], {
    cwd,
    encoding: 'utf8',
    env: ENV,
    timeout: BUILD_TIMEOUT_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `bin/amp-relay.js ARGS` started in `cwd`; `started` resolves on its first stderr line (or exit), `done` at exit. */
function startCli(cwd: string, args: string[]) {
  const proc = spawn(process.execPath, ['bin/amp-relay.js', ...args], { cwd, env: ENV, timeout: BUILD_TIMEOUT_MS });
  let stderr = '';
  const started = new Promise<void>((resolve) => {
    proc.stderr.once('data', () => resolve());
    proc.once('close', () => resolve()); // exited silently: the caller's checks fail at once
  });
  proc.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ status: number | null; stderr: string }>((resolve) =>
    proc.once('close', (status) => resolve({ status, stderr })),
  );
  return { started, done };
}

/** A clone with a current dist/ (copied from one built once: copies are newer than the sources). */
function builtClone(name: string): string {
  const base = join(root, 'built-base');
  if (!existsSync(join(base, 'dist', 'src', 'cli.js'))) {
    cloneInto(base);
    execFileSync(process.execPath, ['scripts/ensure-built.mjs'], { cwd: base, stdio: 'ignore' });
  }
  const dir = join(root, name);
  cloneInto(dir);
  cpSync(join(base, 'dist'), join(dir, 'dist'), { recursive: true });
  return dir;
}

function leaveLock(dir: string, content: string): string {
  const lock = join(dir, 'dist', '.build-lock');
  mkdirSync(lock, { recursive: true });
  writeFileSync(join(lock, 'pid'), content);
  return lock;
}

/** `bin/amp-relay.js --help` in `dir`, bounded well below the 300 s wait for a live build. */
function help(dir: string, prefix: string[] = []) {
  const [cmd, ...args] = [...prefix, process.execPath, 'bin/amp-relay.js', '--help'];
  return spawnSync(cmd as string, args, { cwd: dir, encoding: 'utf8', env: ENV, timeout: 60_000 });
}

const POLL_MS = 10;
/** Resolves once `path` exists (a bounded poll: the build writes it within BUILD_TIMEOUT_MS). */
async function appears(path: string): Promise<void> {
  for (let i = 0; i < BUILD_TIMEOUT_MS / POLL_MS; i++) {
    if (existsSync(path)) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${path} did not appear`);
}

describe('amp-relay in a fresh clone, before any build', () => {
  it('npx amp-relay keygen builds dist/ first, then prints the keys', () => {
    const dir = join(root, 'clone');
    cloneInto(dir);
    expect(existsSync(join(dir, 'dist'))).toBe(false);
    const r = npx(dir, ['keygen']);
    expect(r.stderr).toBe(BUILDING);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]*-----END PUBLIC KEY-----\n$/);
    expect(existsSync(join(dir, 'dist', 'src', 'cli.js'))).toBe(true);
    expect(existsSync(join(dir, 'dist', 'console', 'index.html'))).toBe(true);
    expect(existsSync(join(dir, 'dist', 'console', 'assets', 'app.js'))).toBe(true);
    // Built once: the next run says nothing about compiling.
    const again = npx(dir, ['--help']);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
  }, 200_000);

  it('a console older than its sources rebuilds the console only; an older dist/src, tsc only', () => {
    const dir = builtClone('console-stale');
    const ensure = () => {
      const r = spawnSync(process.execPath, ['scripts/ensure-built.mjs'], { cwd: dir, encoding: 'utf8', env: ENV });
      return { status: r.status, stderr: r.stderr };
    };
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(join(dir, 'dist', 'console', 'index.html'), past, past);
    expect(ensure()).toEqual({ status: 0, stderr: 'amp-relay: building the admin console (esbuild)...\n' });
    expect(ensure()).toEqual({ status: 0, stderr: '' });
    utimesSync(join(dir, 'dist', 'src', 'cli.js'), past, past);
    expect(ensure()).toEqual({ status: 0, stderr: 'amp-relay: compiling TypeScript (tsc)...\n' });
    expect(ensure()).toEqual({ status: 0, stderr: '' });
  }, 200_000);

  // Three commands in an unbuilt clone: the first compiles; the second starts while it does; the
  // third starts the moment dist/src/cli.js appears (tsc is still writing the rest of dist/). All
  // exit 0: the later ones wait for the build instead of loading a half-written dist/. Three
  // fresh clones, each must pass.
  it('three commands at once build once, and none loads a half-written dist/', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = join(root, `race-${round}`);
      cloneInto(dir);
      const cmd = (n: number) => ['check-config', '--data-dir', join(dir, `data-${n}`)];
      const first = startCli(dir, cmd(1));
      await first.started; // "compiling TypeScript": it holds the build lock now
      const second = startCli(dir, cmd(2));
      await appears(join(dir, 'dist', 'src', 'cli.js'));
      const third = startCli(dir, cmd(3));
      const results = await Promise.all([first.done, second.done, third.done]);
      for (const r of results) expect(r).toEqual({ status: 0, stderr: expect.not.stringContaining('Error') });
      expect(results.filter((r) => r.stderr.includes('compiling TypeScript')).length).toBe(1);
      expect(existsSync(join(dir, 'dist', '.build-lock'))).toBe(false);
    }
  }, 600_000);

  it('takes over the build lock of a build that died', () => {
    const dir = join(root, 'stale-lock');
    cloneInto(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    mkdirSync(join(dir, 'dist', '.build-lock'), { recursive: true });
    writeFileSync(join(dir, 'dist', '.build-lock', 'pid'), dead.stdout);
    const r = npx(dir, ['--help']);
    expect(r.stderr).toBe(BUILDING);
    expect(r.status).toBe(0);
    expect(existsSync(join(dir, 'dist', '.build-lock'))).toBe(false);
  }, 200_000);

  // A container killed mid-build restarts with the same PIDs: PID 1 (or the command itself) runs
  // again, but it is not the build that locked. Formerly each run waited 300 s, then exit 1.
  it('a lock with a reused PID, another start time or its own PID is stale: no wait', () => {
    const dir = builtClone('reused-pid');
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    for (const content of ['1\n', `1 1 ${boot}`, `1 ${process.pid} other-boot`]) {
      const lock = leaveLock(dir, content);
      const r = help(dir);
      expect({ content, status: r.status, stderr: r.stderr }).toEqual({ content, status: 0, stderr: '' });
      expect(existsSync(lock)).toBe(false);
    }
    const own = help(dir, ['sh', '-c', 'mkdir -p dist/.build-lock; echo $$ > dist/.build-lock/pid; exec "$0" "$@"']);
    expect({ status: own.status, stderr: own.stderr }).toEqual({ status: 0, stderr: '' });
    expect(existsSync(join(dir, 'dist', '.build-lock'))).toBe(false);
  }, 200_000);

  it('a lock being made (no PID written yet) is waited for, not stolen, until its grace expires', async () => {
    const dir = builtClone('lock-being-made');
    const lock = leaveLock(dir, '');
    const cli = startCli(dir, ['--help']);
    await cli.started;
    expect(existsSync(join(lock, 'pid'))).toBe(true); // still there: the waiter did not take it
    rmSync(lock, { recursive: true }); // the holder finishes
    expect(await cli.done).toEqual({ status: 0, stderr: 'amp-relay: waiting for the build another process runs...\n' });
    // Its maker died before writing the PID: after the grace (10 s by the lock's mtime), stale.
    leaveLock(dir, '');
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const r = help(dir);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(existsSync(lock)).toBe(false);
  }, 200_000);

  it('another user runs a root-owned clone with a stale lock: a current dist/ works; else one line', (ctx) => {
    if (process.getuid?.() !== 0 || spawnSync('setpriv', ['--version']).status !== 0) {
      ctx.skip('needs root and setpriv (util-linux) to run as nobody');
    }
    const dir = builtClone('other-user');
    chmodSync(root, 0o755); // mkdtemp made it 0700
    const lock = leaveLock(dir, '999999999 1 -');
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const r = help(dir, nobody);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toContain('amp-relay');
    expect(existsSync(lock)).toBe(true); // it could not remove it, and needed not
    // Sources newer than dist/: it cannot build here and says so in one line.
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'tsconfig.json'), later, later);
    const stale = help(dir, nobody);
    expect({ status: stale.status, stderr: stale.stderr }).toEqual({
      status: 1,
      stderr: "amp-relay: cannot build dist/ here (permission denied): run `npm run build` as the clone's owner\n",
    });
  }, 200_000);

  it('without a way to build it says so in one line, exit 1, no stack', () => {
    const dir = join(root, 'no-build');
    cloneInto(dir);
    rmSync(join(dir, 'scripts', 'ensure-built.mjs'));
    const r = npx(dir, ['keygen']);
    expect(r.stderr).toBe(
      'amp-relay is not built: run `npm ci` (its dependencies) then `npm run build` in its directory\n',
    );
    expect(r.stdout).toBe('');
    expect(r.status).toBe(1);
  }, 60_000);
});
