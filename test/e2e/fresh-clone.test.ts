// A fresh clone before any build: `npx amp-relay keygen` compiles first (saying so on stderr, never
// on stdout) and then runs; a copy that cannot build (no scripts/ensure-built.mjs or no TypeScript,
// as an installed package) says in one line how to build, exit 1, no stack. The "clone" is the
// files git tracks (bin, scripts, src, proto, package.json, tsconfig.json) copied into a temp dir,
// so it is this working tree as a clone of it would be, with node_modules symlinked (no npm ci).

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/server.js';

const root = tempDir('amp-clone-');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const BUILD_TIMEOUT_MS = 150_000;

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

function npx(cwd: string, args: string[]) {
  const r = spawnSync('npx', ['--no-install', 'amp-relay', ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: root, npm_config_update_notifier: 'false' },
    timeout: BUILD_TIMEOUT_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('amp-relay in a fresh clone, before any build', () => {
  it('npx amp-relay keygen builds dist/ first, then prints the keys', () => {
    const dir = join(root, 'clone');
    cloneInto(dir);
    expect(existsSync(join(dir, 'dist'))).toBe(false);
    const r = npx(dir, ['keygen']);
    expect(r.stderr).toBe('amp-relay: compiling TypeScript (tsc)...\n');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]*-----END PUBLIC KEY-----\n$/);
    expect(existsSync(join(dir, 'dist', 'src', 'cli.js'))).toBe(true);
    // Built once: the next run says nothing about compiling.
    const again = npx(dir, ['--help']);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
  }, 200_000);

  it('without a way to build it says so in one line, exit 1, no stack', () => {
    const dir = join(root, 'no-build');
    cloneInto(dir);
    rmSync(join(dir, 'scripts', 'ensure-built.mjs'));
    const r = npx(dir, ['keygen']);
    expect(r.stderr).toBe(
      'amp-relay is not built: run `npm run build` (or `npm start`, which builds) in its directory\n',
    );
    expect(r.stdout).toBe('');
    expect(r.status).toBe(1);
  }, 60_000);
});
