// `npm pack` makes a package whose commands work after a global install: amp-relay (the server CLI)
// and the agent CLI (amp-register.sh, amp-send.sh, ... and their names without .sh). The scripts are
// reached through npm's bin symlinks and must still find amp-lib.sh beside their real file.
//
// How it is installed here (tests run offline, loopback only): the tarball from `npm pack` goes into a
// temp prefix with `npm install -g --prefix <tmp> --offline <tarball>`. That needs the registry's
// metadata of every dependency in npm's cache, which a machine that only ran `npm ci` does not have
// (npm ci fetches tarballs, not metadata; npm ignores a lockfile inside a tarball it installs). When
// npm answers ENOTCACHED, the test installs the same tarball the other way npm allows offline: unpack
// it, `npm ci --omit=dev --offline` in it with the repo's lockfile (production dependencies only, from
// npm's cache), then `npm install -g --prefix <tmp> --offline <unpacked dir>`, which links the package
// and its bins into the prefix as a global install does. Either way npm makes the bin links.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const NPM_TIMEOUT_MS = 120_000;
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const AGENT_SCRIPTS = ['amp-register', 'amp-send', 'amp-inbox', 'amp-reply', 'amp-status'];
const TENANT = 'pkgtest';

let work: string;
let prefix: string;
let tarball: string;
let files: { path: string; mode: number }[];
let installedBy: string;
let t: TestServer;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<Result> {
  try {
    const r = await run(cmd, args, {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: join(work, 'home'), ...opts.env },
      timeout: NPM_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e: any) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const NPM_OFFLINE = ['--offline', '--no-audit', '--no-fund', '--loglevel=error'];
// npm keeps its own cache (the one npm ci filled); only HOME is a temp dir.
const npmEnv = () => ({ npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? '/root', '.npm') });

/** The repo's lockfile with each package's registry URL filled in where it was left out. */
function lockWithResolved(): string {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  for (const [key, entry] of Object.entries<any>(lock.packages)) {
    if (key === '' || entry.resolved || entry.link) continue;
    const name: string = entry.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    entry.resolved = `https://registry.npmjs.org/${name}/-/${name.replace(/^@[^/]+\//, '')}-${entry.version}.tgz`;
  }
  return JSON.stringify(lock, null, 2);
}

async function install(): Promise<string> {
  const direct = await sh('npm', ['install', '-g', '--prefix', prefix, ...NPM_OFFLINE, tarball], {
    cwd: work,
    env: npmEnv(),
  });
  if (direct.code === 0) return 'npm install -g <tarball>';
  expect(direct.stderr, `npm install -g failed for another reason than a cold cache:\n${direct.stderr}`).toContain(
    'ENOTCACHED',
  );
  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  const untar = await sh('tar', ['xzf', tarball, '-C', unpacked], { cwd: work });
  expect(untar.stderr).toBe('');
  const dir = join(unpacked, 'package');
  writeFileSync(join(dir, 'package-lock.json'), lockWithResolved());
  const deps = await sh('npm', ['ci', '--omit=dev', ...NPM_OFFLINE], { cwd: dir, env: npmEnv() });
  expect(deps.code, deps.stderr).toBe(0);
  const link = await sh('npm', ['install', '-g', '--prefix', prefix, ...NPM_OFFLINE, dir], {
    cwd: work,
    env: npmEnv(),
  });
  expect(link.code, link.stderr).toBe(0);
  return 'npm ci --omit=dev in the unpacked tarball + npm install -g <dir>';
}

beforeAll(async () => {
  work = tempDir('amp-pkg-');
  prefix = join(work, 'prefix');
  mkdirSync(join(work, 'home'));
  const pack = await sh('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], {
    cwd: ROOT,
    env: npmEnv(),
  });
  expect(pack.code, pack.stderr).toBe(0);
  const [info] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[')));
  tarball = join(work, info.filename);
  files = info.files;
  installedBy = await install();
  t = await startTestServer();
}, 4 * NPM_TIMEOUT_MS);

afterAll(async () => {
  await t?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A command from the prefix's bin dir, with only that dir (and the system's tools) on PATH. */
function installed(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  const path = `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`;
  return sh(cmd, args, { cwd: work, env: { PATH: path, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1', ...env } });
}

describe('npm pack', () => {
  it('packs the built code, the admin console, the CLI and the agent scripts, executable', () => {
    const paths = new Set(files.map((f) => f.path));
    for (const p of [
      'package.json',
      'README.md',
      'bin/amp-relay.js',
      'dist/src/cli.js',
      'dist/src/node-version.js',
      'dist/src/server.js',
      'dist/proto/index.js',
      'dist/console/index.html',
      'dist/console/assets/app.js',
      'dist/console/assets/app.css',
      'scripts/amp-lib.sh',
      ...AGENT_SCRIPTS.map((s) => `scripts/${s}.sh`),
    ]) {
      expect(paths, p).toContain(p);
    }
    const mode = (p: string) => files.find((f) => f.path === p)!.mode;
    for (const p of ['bin/amp-relay.js', ...AGENT_SCRIPTS.map((s) => `scripts/${s}.sh`)]) {
      expect(mode(p) & 0o111, `${p} is executable`).toBe(0o111);
    }
  });

  it('packs no tests, data, benchmarks, dependencies or dev scripts', () => {
    const bad = files
      .map((f) => f.path)
      .filter((p) =>
        /^(test|data|bench|node_modules|coverage|test-results|dist\/test|dist\/bench)\/|\.tgz$|^scripts\/(?!amp-)/.test(
          p,
        ),
      );
    expect(bad).toEqual([]);
  });

  it('every bin entry of package.json is in the package', () => {
    const paths = new Set(files.map((f) => f.path));
    for (const target of Object.values<string>(PKG.bin)) expect(paths).toContain(target);
  });
});

describe(`installed globally into a temp prefix`, () => {
  it('npm linked every bin entry into <prefix>/bin', async () => {
    console.info(`package-install: installed by ${installedBy}`);
    const ls = await sh('ls', [join(prefix, 'bin')], { cwd: work });
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual(Object.keys(PKG.bin).sort());
  });

  it('amp-relay --help and amp-relay version', async () => {
    const help = await installed('amp-relay', ['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Usage:');
    expect(help.stdout).toContain('amp-relay serve');
    const version = await installed('amp-relay', ['version']);
    expect(version).toEqual({ code: 0, stdout: `${PKG.version}\n`, stderr: '' });
  });

  it('amp-register.sh, amp-send.sh and amp-inbox.sh (and the names without .sh) work against a server', async () => {
    const home = { HOME: join(work, 'home') };
    for (const name of ['alice', 'bob']) {
      const r = await installed('amp-register.sh', ['--json', '-n', name, '-p', t.url, '-t', TENANT], home);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).address).toBe(`${name}@${TENANT}.aimaestro.local`);
    }
    const sent = await installed(
      'amp-send.sh',
      ['--json', '-a', 'alice', `bob@${TENANT}.aimaestro.local`, 'Hello', 'from the package'],
      home,
    );
    expect(sent.code, sent.stderr).toBe(0);
    const id = JSON.parse(sent.stdout).id;
    expect(id).toMatch(/^msg_/);
    const inbox = await installed('amp-inbox', ['--json', '-a', 'bob', 'list'], home);
    expect(inbox.code, inbox.stderr).toBe(0);
    const listed = JSON.parse(inbox.stdout);
    const messages = listed.messages ?? listed;
    expect(messages.map((m: any) => m.id)).toEqual([id]);
    const read = await installed('amp-inbox.sh', ['-a', 'bob', 'read', id], home);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout + read.stderr).toContain('from the package');
    const status = await installed('amp-status', ['-a', 'alice'], home);
    expect(status.code, status.stderr).toBe(0);
  });

  it('amp-relay serve runs from the install (its production dependencies load: uWS, lmdb, sodium)', async () => {
    const dataDir = join(work, 'serve-data');
    const path = `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`;
    const proc = spawn('amp-relay', ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], {
      cwd: work,
      env: { PATH: path, HOME: join(work, 'home') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | string>((resolve) => proc.on('exit', (c, sig) => resolve(c ?? sig ?? -1)));
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          const m = /"url":"([^"]+)".*"msg":"listening"/.exec(line);
          if (m) resolve(m[1]);
        });
        void exited.then((c) => reject(new Error(`amp-relay serve exited (${c}) before listening: ${stderr}`)));
      });
      const res = await fetch(`${url}/api/v1/health`);
      expect(res.status).toBe(200);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('README: the agent CLI installed by copy (block cli-install, run as written with bash)', () => {
  it('works on a fresh HOME with no ~/.local/bin, and the copies work against a server', async () => {
    const home = join(work, 'fresh-home');
    mkdirSync(home);
    // Run from the repo (the block copies scripts/ from there); the bash PATH has no amp-* on it.
    const r = await sh('bash', ['-e', '-c', readmeBlock('cli-install')], { cwd: ROOT, env: { HOME: home } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: amp-status.sh');
    const copied = (cmd: string, args: string[]) =>
      sh(join(home, '.local', 'bin', cmd), args, { cwd: home, env: { HOME: home, NO_PROXY: '127.0.0.1' } });
    const reg = await copied('amp-register.sh', ['--json', '-n', 'carol', '-p', t.url, '-t', TENANT]);
    expect(reg.code, reg.stderr).toBe(0);
    const status = await copied('amp-status.sh', []);
    expect(status.code, status.stderr).toBe(0);
  });
});
