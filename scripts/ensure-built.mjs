#!/usr/bin/env node
// Compile TypeScript to dist/ when dist/ is missing or older than any source file, and build the
// admin console (scripts/build-console.mjs: src/console/web to dist/console) when
// dist/console/index.html is missing or older than a file under src/console/web or the build
// script, so that `npm start` and `npm test` work right after `npm ci` and always run current code.
// The console's sources are not tsc's (tsconfig.json excludes src/console/web): changing them
// rebuilds the console only. Both builds run under the one lock below.
//
// Two commands started at once must not both compile (tsc rewrites dist/ in place, and a process
// loading it half-written fails): the build runs under a lock, the dir dist/.build-lock (mkdir is
// atomic) holding a file `pid` with the builder's PID, its start time (field 22 of /proc/PID/stat)
// and the boot id, written to a temp file and renamed in (never seen half-written). A process that
// finds the lock waits (bounded) until it is gone, then checks again whether dist/ is current.
// The lock is stale, and taken over, when its PID no longer runs, is this process or an ancestor
// (a container restarted with the same PIDs), started at another time (a reused PID), or when its
// `pid` file is missing or unreadable for longer than NO_PID_GRACE_MS (its maker died before
// writing it). The lock is released only if it still holds this process's own entry.
// A current dist/ needs no lock: with no live build, it is used as is (another user running a
// clone it cannot write still works). bin/amp-relay.js runs this script whenever the lock
// exists, so it never loads a dist/ being written.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const marker = join(dist, 'src', 'cli.js');
const consoleSrc = join(root, 'src', 'console', 'web');
const consoleScript = join(root, 'scripts', 'build-console.mjs');
const consoleMarker = join(dist, 'console', 'index.html');
const lockDir = join(dist, '.build-lock');
const WAIT_MS = 300_000;
const POLL_MS = 100;
/** A lock without a readable `pid` file is being made; older than this, its maker died before writing it. */
const NO_PID_GRACE_MS = 10_000;
const DENIED = new Set(['EACCES', 'EPERM', 'EROFS']);
const DENIED_MESSAGE =
  "amp-relay: cannot build dist/ here (permission denied): run `npm run build` as the clone's owner\n";

/** The latest mtime of a file under `dir`, leaving out the directory `skip`. */
function newest(dir, skip) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (p === skip) continue;
    t = Math.max(t, e.isDirectory() ? newest(p, skip) : statSync(p).mtimeMs);
  }
  return t;
}

const builtSince = (file, time) => existsSync(file) && statSync(file).mtimeMs >= time;

function tscCurrent() {
  const sourcesTime = Math.max(
    newest(join(root, 'src'), consoleSrc),
    newest(join(root, 'proto')),
    statSync(join(root, 'tsconfig.json')).mtimeMs,
  );
  return builtSince(marker, sourcesTime);
}

/** A clone without the console's sources (or its build script) has no console to build. */
function consoleCurrent() {
  if (!existsSync(consoleSrc) || !existsSync(consoleScript)) return true;
  return builtSince(consoleMarker, Math.max(newest(consoleSrc), statSync(consoleScript).mtimeMs));
}

const isCurrent = () => tscCurrent() && consoleCurrent();

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readOr(path, fallback) {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** Fields of /proc/PID/stat from field 3 (state) on, or undefined without /proc or that process. */
function statFields(pid) {
  const s = readOr(`/proc/${pid}/stat`, '');
  const end = s.lastIndexOf(')');
  return end < 0 ? undefined : s.slice(end + 2).split(' ');
}

const startTime = (pid) => statFields(pid)?.[19]; // field 22
const bootId = readOr('/proc/sys/kernel/random/boot_id', '-');
const canCheckStart = startTime(process.pid) !== undefined;

/** This process and its ancestors (a lock with one of these PIDs was left by a former run). */
function ownLine() {
  const pids = new Set([process.pid, process.ppid]);
  let pid = process.ppid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    pid = Number(statFields(pid)?.[1]);
    if (!Number.isInteger(pid) || pid < 1) break;
    pids.add(pid);
  }
  return pids;
}

function running(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const ownEntry = `${process.pid} ${startTime(process.pid) ?? '-'} ${bootId}`;

/** Whether the lock entry `text` ("PID START BOOT") names a build that runs now. */
function live(text) {
  const [pidText, start, boot] = text.split(' ');
  const pid = Number(pidText);
  if (!/^\d+$/.test(pidText) || pid < 1 || ownLine().has(pid) || !running(pid)) return false;
  if (!canCheckStart) return true; // no /proc: the PID is all there is
  return start === startTime(pid) && boot === bootId;
}

/** The lock now: none, live (a build runs or the lock is being made) or stale (with the entry seen). */
function inspect() {
  let mtimeMs;
  try {
    mtimeMs = statSync(lockDir).mtimeMs;
  } catch (e) {
    if (e.code === 'ENOENT') return { kind: 'none' };
    throw e;
  }
  const text = readOr(join(lockDir, 'pid'), '');
  if (/^\d+( |$)/.test(text)) return live(text) ? { kind: 'live', pid: text.split(' ')[0] } : { kind: 'stale', text };
  return Date.now() - mtimeMs > NO_PID_GRACE_MS ? { kind: 'stale', text } : { kind: 'live' };
}

/** Remove a stale lock, unless it changed since it was judged: moved aside first, put back if it did. */
function takeOver(seen) {
  const aside = `${lockDir}.stale-${process.pid}`;
  try {
    renameSync(lockDir, aside);
  } catch (e) {
    if (e.code === 'ENOENT') return; // another process took it over
    throw e;
  }
  if (readOr(join(aside, 'pid'), '') !== seen) {
    try {
      renameSync(aside, lockDir); // a new holder's lock: give it back
      return;
    } catch {
      // a third process locked meanwhile: the moved lock's holder finds it gone and does not remove it
    }
  }
  rmSync(aside, { recursive: true, force: true });
}

/** mkdir the lock and rename this process's entry into it; false when another process was first. */
function tryLock() {
  try {
    mkdirSync(lockDir);
  } catch (e) {
    if (e.code === 'EEXIST') return false;
    throw e;
  }
  const tmp = join(dist, `.build-lock-pid.${process.pid}`);
  writeFileSync(tmp, ownEntry);
  renameSync(tmp, join(lockDir, 'pid'));
  return true;
}

/**
 * 'current' when dist/ is current and no build runs; 'locked' when this process holds the lock
 * (dist/ may have been built meanwhile: check again); 'timeout' after WAIT_MS of another's build.
 */
function acquire() {
  const deadline = Date.now() + WAIT_MS;
  let said = false;
  while (Date.now() < deadline) {
    const lock = inspect();
    if (lock.kind !== 'live' && isCurrent()) {
      if (lock.kind === 'stale') ignoreDenied(() => takeOver(lock.text));
      return 'current';
    }
    if (lock.kind === 'none') {
      mkdirSync(dist, { recursive: true });
      if (tryLock()) return 'locked';
    } else if (lock.kind === 'stale') takeOver(lock.text);
    else if (!said) {
      const who = lock.pid ? ` (pid ${lock.pid})` : '';
      process.stderr.write(`amp-relay: waiting for the build another process runs${who}...\n`);
      said = true;
    }
    if (lock.kind === 'live') sleep(POLL_MS);
  }
  return 'timeout';
}

function ignoreDenied(fn) {
  try {
    fn();
  } catch (e) {
    if (!DENIED.has(e.code)) throw e;
  }
}

function release() {
  if (readOr(join(lockDir, 'pid'), '') === ownEntry) rmSync(lockDir, { recursive: true, force: true });
}

/** Run `args` with node, saying `what` first; false (and a line saying so) when it fails. */
function step(what, failed, args) {
  process.stderr.write(`amp-relay: ${what}...\n`);
  try {
    execFileSync(process.execPath, args, { stdio: 'inherit' });
    return true;
  } catch {
    process.stderr.write(`amp-relay: ${failed} (see above)\n`);
    return false;
  }
}

/** Whichever of the two builds is not current: tsc to dist/, then the console to dist/console. */
function build() {
  const tsc = [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')];
  if (!tscCurrent() && !step('compiling TypeScript (tsc)', 'TypeScript compilation failed', tsc)) return false;
  return (
    consoleCurrent() ||
    step('building the admin console (esbuild)', 'building the admin console failed', [consoleScript])
  );
}

/** Exit code: 0 when dist/ is current (built now or before). */
function main() {
  if (isCurrent() && !existsSync(lockDir)) return 0;
  let got;
  try {
    got = acquire();
  } catch (e) {
    if (!DENIED.has(e.code)) throw e;
    if (inspect().kind !== 'live' && isCurrent()) return 0;
    process.stderr.write(DENIED_MESSAGE);
    return 1;
  }
  if (got === 'current') return 0;
  if (got === 'timeout') {
    process.stderr.write(
      `amp-relay: another build has held ${lockDir} for ${WAIT_MS / 1000} s; remove it if no build runs\n`,
    );
    return 1;
  }
  try {
    return isCurrent() || build() ? 0 : 1; // another process may have built it while this one waited
  } finally {
    release();
  }
}

process.exitCode = main();
