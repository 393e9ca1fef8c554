// `amp-relay restore DIR`: a backup into --data-dir, all or nothing.
//
// It holds the data dir's lock while it works, so it refuses a dir a server is running on (even
// with --force) and no server can start on it half-restored. The backup is first copied into a
// staging dir inside the target (same file system, so the final moves are renames) and checked
// (sizes as backup.json lists them, the store opens as LMDB); only then does what the target held
// move to `pre-restore-<time>/` (--force) and the staged entries move in. A failure before that
// leaves the target as it was; a failed move is undone. A backup inside the target, or a target
// inside the backup, is refused; backup.json may name only the files a backup holds. Run as root,
// the restored files (and every dir made for a new data dir) get the owner of the data dir (of its
// nearest existing parent when new), so the server's own user can open them. Symlinks in a backup's
// attachments/ are left out (backup-common.ts), and amp.lmdb must be an LMDB file before it is opened.

import {
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LOCK_FILE, openDataDir } from '../ops/data-dir.js';
import { checkLmdbFile, inspectLmdb, LMDB_FILE } from '../store/backup.js';
import {
  ATTACHMENTS,
  BACKUP_NAMES,
  BackupUsageError,
  copyPrivate,
  DIR_MODE,
  FORMAT,
  MANIFEST,
  type Manifest,
  parseArgs,
} from './backup-common.js';

type ConfigOf = (args: string[]) => Config;
interface Owner {
  uid: number;
  gid: number;
}
const MAX_DEPTH = 4096;

/** Each listed entry: a known name, listed once, of the right kind, with the size it lists. */
function checkEntry(dir: string, f: { name: unknown; bytes: unknown }, seen: Set<string>): void {
  if (typeof f?.name !== 'string' || !BACKUP_NAMES.includes(f.name) || seen.has(f.name))
    throw new BackupUsageError(
      `${dir}/${MANIFEST} lists ${JSON.stringify(f?.name)}, which is not one of the files a backup holds ` +
        `(${BACKUP_NAMES.join(', ')}, each once): the backup is damaged or not amp-relay's`,
    );
  seen.add(f.name);
  if (typeof f.bytes !== 'number' || !Number.isSafeInteger(f.bytes) || f.bytes < 0)
    throw new BackupUsageError(`${dir}/${MANIFEST}: ${f.name} has no valid byte count`);
  const path = join(dir, f.name);
  if (!existsSync(path)) throw new Error(`the backup lacks ${f.name}, which ${MANIFEST} lists`);
  const st = lstatSync(path);
  const dirWanted = f.name === ATTACHMENTS;
  if (dirWanted ? !st.isDirectory() : !st.isFile())
    throw new Error(`${path} is not a ${dirWanted ? 'dir' : 'plain file'}: the backup is damaged`);
  if (!dirWanted && st.size !== f.bytes)
    throw new Error(`${path} has ${st.size} bytes, ${MANIFEST} says ${f.bytes}: the backup is damaged`);
}

function readManifest(dir: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (e) {
    throw new BackupUsageError(`${dir} is not a complete amp-relay backup (${MANIFEST}: ${(e as Error).message})`);
  }
  if (m?.format !== FORMAT || !Array.isArray(m.files)) throw new BackupUsageError(`${dir}/${MANIFEST} is not ours`);
  const seen = new Set<string>();
  for (const f of m.files) checkEntry(dir, f, seen);
  if (!seen.has(LMDB_FILE)) throw new BackupUsageError(`${dir}/${MANIFEST} lists no ${LMDB_FILE}: not a backup`);
  return m;
}

/** `path` resolved through symlinks as far as it exists (a new dir: through its nearest existing parent). */
function realPath(path: string): string {
  let base = resolve(path);
  const tail: string[] = [];
  for (let i = 0; i < MAX_DEPTH && !existsSync(base); i++) {
    tail.unshift(basename(base));
    base = dirname(base);
  }
  return join(realpathSync(base), ...tail);
}

function isWithin(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Whether `path` is `dir` or under it, after symlinks (either may not exist yet). */
export function isInside(path: string, dir: string): boolean {
  return isWithin(realPath(path), realPath(dir));
}

/** A backup inside the target would be moved aside (--force) before it is read; the reverse is as bad. */
function checkPlaces(backupDir: string, dataDir: string): void {
  const src = realpathSync(backupDir);
  const target = realPath(dataDir);
  if (isWithin(src, target))
    throw new BackupUsageError(
      `the backup ${backupDir} is inside the data dir ${dataDir}: move it out of the data dir first`,
    );
  if (isWithin(target, src))
    throw new BackupUsageError(`the data dir ${dataDir} is inside the backup ${backupDir}: give another --data-dir`);
}

/** The dirs of `dataDir` that do not exist yet, outermost first, and its nearest existing ancestor (or itself). */
function missingDirs(dataDir: string): { missing: string[]; existing: string } {
  let p = resolve(dataDir);
  const missing: string[] = [];
  for (let i = 0; i < MAX_DEPTH && !existsSync(p); i++) {
    missing.unshift(p);
    p = dirname(p);
  }
  return { missing, existing: p };
}

/** Run as root: the owner the restored files get (the data dir's, or its nearest parent's); else none. */
function ownerFor(dataDir: string): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const st = statSync(missingDirs(dataDir).existing);
  return st.uid === 0 && st.gid === 0 ? undefined : { uid: st.uid, gid: st.gid };
}

function chownTree(path: string, owner: Owner): void {
  lchownSync(path, owner.uid, owner.gid);
  if (lstatSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), owner);
}

/** Relative path -> size of every file under `dir` but symlinks (to check a copied tree: copies skip links). */
function treeSizes(dir: string, into = new Map<string, number>(), prefix = ''): Map<string, number> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = join(prefix, e.name);
    if (e.isDirectory()) treeSizes(join(dir, e.name), into, rel);
    else if (!e.isSymbolicLink()) into.set(rel, lstatSync(join(dir, e.name)).size);
  }
  return into;
}

/** Copy every listed entry into `staging` and check it arrived whole. */
async function stage(backupDir: string, manifest: Manifest, staging: string): Promise<void> {
  for (const f of manifest.files) {
    const from = join(backupDir, f.name);
    const to = join(staging, f.name);
    copyPrivate(from, to);
    if (f.name !== ATTACHMENTS) {
      const size = statSync(to).size;
      if (size !== f.bytes) throw new Error(`${f.name} arrived with ${size} of ${f.bytes} bytes`);
    } else {
      const want = JSON.stringify([...treeSizes(from)].sort());
      if (JSON.stringify([...treeSizes(to)].sort()) !== want) throw new Error(`${ATTACHMENTS}/ did not arrive whole`);
    }
  }
  await inspectLmdb(join(staging, LMDB_FILE), false); // the store opens as LMDB
}

/** A failed restore whose undo failed too: the target is not as it was (stderr says what is where). */
class UndoFailed extends Error {}

/** Move what the target held into pre-restore-<time>/, then the staged entries in; undone on failure. */
function moveIntoPlace(target: string, staging: string, names: string[], present: string[]): string | undefined {
  const aside = present.length ? join(target, `pre-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`) : '';
  const moves: [string, string][] = [];
  const move = (from: string, to: string) => {
    renameSync(from, to);
    moves.push([from, to]);
  };
  try {
    if (aside) mkdirSync(aside, { mode: DIR_MODE });
    for (const n of present) move(join(target, n), join(aside, n));
    for (const n of names) move(join(staging, n), join(target, n));
  } catch (e) {
    let undone = true;
    for (const [from, to] of moves.reverse()) {
      try {
        renameSync(to, from);
      } catch (undo) {
        undone = false;
        process.stderr.write(`amp-relay: could not move ${to} back to ${from}: ${(undo as Error).message}\n`);
      }
    }
    if (!undone) throw new UndoFailed(`restore failed and could not be undone: ${(e as Error).message}`);
    if (aside && existsSync(aside)) rmdirSync(aside); // empty again: every move was undone
    throw e;
  }
  return aside || undefined;
}

/** Warnings of openDataDir (an open dir mode, a stale lock) as text on stderr. */
const stderrLogger = {
  warn: (fields: object, msg: string) => process.stderr.write(`amp-relay: warning: ${msg} ${JSON.stringify(fields)}\n`),
} as unknown as Logger;

/** Stage, check and move the backup in; the target is as it was if anything fails. Returns the aside dir. */
async function restoreInto(backupDir: string, manifest: Manifest, target: string, present: string[], owner?: Owner) {
  const staging = mkdtempSync(join(target, '.restore-staging-'));
  try {
    await stage(backupDir, manifest, staging);
    if (owner) chownTree(staging, owner);
    return moveIntoPlace(
      target,
      staging,
      manifest.files.map((f) => f.name),
      present,
    );
  } catch (e) {
    if (e instanceof UndoFailed) throw e;
    throw new Error(`restore failed, ${target} is as it was: ${(e as Error).message}`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export async function restoreCommand(rest: string[], configOf: ConfigOf): Promise<number> {
  const { dir, flag: force, configArgs } = parseArgs('restore', rest, '--force');
  const { dataDir } = configOf(configArgs);
  const manifest = readManifest(dir);
  checkLmdbFile(join(dir, LMDB_FILE)); // before anything is made: lmdb-js may crash opening a non-LMDB file
  checkPlaces(dir, dataDir);
  const owner = ownerFor(dataDir);
  const { missing } = missingDirs(dataDir);
  const lock = openDataDir(dataDir, stderrLogger); // refuses a dir a server runs on
  try {
    // Every dir made for a new nested data dir gets the owner too, or its user could not reach it.
    if (owner) for (const d of missing) lchownSync(d, owner.uid, owner.gid);
    const present = readdirSync(lock.dir).filter((n) => n !== LOCK_FILE);
    if (present.length > 0 && !force)
      throw new BackupUsageError(
        `${lock.dir} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', ...' : ''}); ` +
          'restore into a new dir, or pass --force to move what is there to pre-restore-<time>/',
      );
    const aside = await restoreInto(dir, manifest, lock.dir, present, owner);
    if (owner) for (const d of [lock.dir, aside ?? lock.dir]) lchownSync(d, owner.uid, owner.gid);
    const moved = aside ? `; what was there is in ${aside}` : '';
    process.stdout.write(
      `restored the backup of ${manifest.source} (${manifest.created_at}) into ${lock.dir}${moved}\n`,
    );
  } finally {
    lock.release();
  }
  return 0;
}
