#!/usr/bin/env node
// Compile TypeScript to dist/ when dist/ is missing or older than any source file, so that
// `npm start` and `npm test` work right after `npm ci` and always run current code.
//
// Two commands started at once must not both compile (tsc rewrites dist/ in place, and a process
// loading it half-written fails): the build runs under a lock, the dir dist/.build-lock (mkdir is
// atomic) holding the builder's PID. A process that finds it waits (bounded) until it is gone, then
// checks again whether dist/ is current. A lock whose PID no longer runs (a killed build) is stale
// and taken over. bin/amp-relay.js runs this script whenever the lock exists, so it never loads a
// dist/ being written.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const marker = join(root, 'dist', 'src', 'cli.js');
const lockDir = join(root, 'dist', '.build-lock');
const WAIT_MS = 300_000;
const POLL_MS = 100;
/** A lock dir without a PID file yet is being made; older than this, its maker died before writing it. */
const NO_PID_GRACE_MS = 10_000;

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function isCurrent() {
  const sourcesTime = Math.max(
    newest(join(root, 'src')),
    newest(join(root, 'proto')),
    statSync(join(root, 'tsconfig.json')).mtimeMs,
  );
  return existsSync(marker) && statSync(marker).mtimeMs >= sourcesTime;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function running(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** The PID in the lock, or undefined while it is being made; 0 when the lock is stale. */
function holder() {
  try {
    const pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && running(pid) ? pid : 0;
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    try {
      return Date.now() - statSync(lockDir).mtimeMs > NO_PID_GRACE_MS ? 0 : undefined;
    } catch {
      return undefined; // released meanwhile: try again
    }
  }
}

/** Take the lock, waiting for another build to finish; false when that took longer than WAIT_MS. */
function acquire() {
  mkdirSync(join(root, 'dist'), { recursive: true });
  const deadline = Date.now() + WAIT_MS;
  let said = false;
  while (Date.now() < deadline) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      return true;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const pid = holder();
    if (pid === 0) rmSync(lockDir, { recursive: true, force: true });
    else if (!said) {
      process.stderr.write(`amp-relay: waiting for the build another process runs${pid ? ` (pid ${pid})` : ''}...\n`);
      said = true;
    }
    sleep(POLL_MS);
  }
  return false;
}

function build() {
  process.stderr.write('amp-relay: compiling TypeScript (tsc)...\n');
  try {
    execFileSync(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
      { stdio: 'inherit' },
    );
    return true;
  } catch {
    process.stderr.write('amp-relay: TypeScript compilation failed (see above)\n');
    return false;
  }
}

if (!isCurrent() || existsSync(lockDir)) {
  if (!acquire()) {
    process.stderr.write(
      `amp-relay: another build has held ${lockDir} for ${WAIT_MS / 1000} s; remove it if no build runs\n`,
    );
    process.exit(1);
  }
  let ok = true;
  try {
    if (!isCurrent()) ok = build(); // another process may have built it while this one waited
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
  if (!ok) process.exit(1);
}
