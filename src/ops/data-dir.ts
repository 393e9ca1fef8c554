// The data dir: private to the server's user (dir 0700, files 0600) and held by one server at a time.
//
// The lock is a file, `amp-relay.lock`, created with O_EXCL and holding the owner's PID. It is
// removed on close() and on process exit. A lock whose PID is no longer alive (the owner was killed
// with -9) is stale and taken over with a warning. Two processes taking over the same stale lock at
// the same instant can both succeed (check-then-replace is not atomic); a clean start never races.
// Within one process a Map of held dirs refuses a second server on the same dir, whatever the PID
// in the file says (in a container the next process often gets the dead one's PID).

import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

export const LOCK_FILE = 'amp-relay.lock';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** What the server keeps in the data dir; each must be readable by its owner only. */
const PRIVATE_FILES = ['amp.lmdb', 'amp.lmdb-lock', 'provider-ed25519.pem', 'aid-signing-keys.json', LOCK_FILE];
const TAKEOVER_ATTEMPTS = 3;

/** Another server (another process, or this one) holds the data dir. */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    const who = pid === process.pid ? `another server in this process (pid ${pid})` : `process ${pid}`;
    super(
      `data dir ${dataDir} is in use by ${who} (lock file ${join(dataDir, LOCK_FILE)}); ` +
        'stop that server first, or give this one another --data-dir',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  /** The data dir, resolved. */
  readonly dir: string;
  /** Remove the lock file (if it is still ours). Idempotent. */
  release(): void;
}

/** Held by this process: resolved dir -> its lock. */
const held = new Map<string, DataDirLock>();
let exitHookInstalled = false;

/**
 * Create the data dir (0700) if missing, warn when an existing one is open to others, and lock it.
 * Throws DataDirLockedError when another server holds it.
 */
export function openDataDir(dataDir: string, logger: Logger): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
  const dir = realpathSync(dataDir);
  const mode = statSync(dir).mode & 0o777;
  if (mode & 0o077) {
    logger.warn(
      { dataDir: dir, mode: mode.toString(8).padStart(4, '0') },
      'data dir is accessible to other users (message bodies and key hashes live here); chmod 700 it',
    );
  }
  const mine = held.get(dir);
  if (mine) throw new DataDirLockedError(dir, process.pid);
  const lock = acquire(dir, logger);
  held.set(dir, lock);
  installExitHook();
  return lock;
}

/** Narrow any server file in the dir that others can read to 0600 (files of older versions). */
export function securePrivateFiles(dir: string, logger: Logger): void {
  for (const name of PRIVATE_FILES) {
    const path = join(dir, name);
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch {
      continue; // not created (yet)
    }
    if ((mode & 0o077) === 0) continue;
    chmodSync(path, FILE_MODE);
    logger.warn({ path, mode: mode.toString(8).padStart(4, '0') }, 'file was accessible to other users; now 0600');
  }
}

function acquire(dir: string, logger: Logger): DataDirLock {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
    if (tryCreate(path)) return makeLock(dir, path);
    const owner = readOwner(path);
    if (owner === undefined) continue; // removed in between: try again
    // Our own PID without an entry in `held`: left by a dead process that had our PID.
    if (owner !== process.pid && isAlive(owner)) throw new DataDirLockedError(dir, owner);
    logger.warn({ dataDir: dir, pid: owner }, 'taking over a stale data dir lock (its process is gone)');
    removeIfOwner(path, owner);
  }
  throw new Error(`cannot take the data dir lock ${path}: it keeps changing`);
}

/** O_EXCL create; false when the file exists. */
function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The PID in the lock file; NaN when it holds none (a crash between create and write); undefined when gone. */
function readOwner(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : Number.NaN;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** A killed process nobody has reaped yet still answers kill(pid, 0) (Linux: state Z in /proc). */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false; // no procfs (macOS) or already gone
  }
}

function removeIfOwner(path: string, owner: number): void {
  const now = readOwner(path);
  if (now === undefined || !(now === owner || (Number.isNaN(now) && Number.isNaN(owner)))) return;
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function makeLock(dir: string, path: string): DataDirLock {
  let released = false;
  const lock: DataDirLock = {
    dir,
    release() {
      if (released) return;
      released = true;
      if (held.get(dir) === lock) held.delete(dir);
      removeIfOwner(path, process.pid);
    },
  };
  return lock;
}

/** Locks still held when the process exits (a crash, process.exit) are removed then. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lock of [...held.values()]) {
      try {
        lock.release();
      } catch {
        // exiting anyway
      }
    }
  });
}
