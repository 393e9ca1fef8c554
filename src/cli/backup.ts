// `amp-relay backup DIR` and `amp-relay restore DIR`.
//
// backup: a consistent copy of a data dir, also while its server runs. The LMDB store is copied
// inside one read transaction (store/backup.ts), so it is the store as of one commit: every
// request answered before the backup started is in it. The provider key, the AID signing keys
// and an `attachments/` dir are copied as files (the signing keys file is replaced whole by
// rename, never written in place). The server's lock (`amp-relay.lock`) is neither taken nor
// touched. `backup.json` is written last: a backup without it is incomplete.
//
// restore: into --data-dir, holding that dir's lock while it works, so it refuses a dir a server
// is running on (even with --force) and no server can start on it half-restored. A non-empty
// target is refused unless --force, which moves what was there into `pre-restore-<time>/` inside
// it. Dir 0700, files 0600, as the server makes them (ops/data-dir.ts).

import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { PROVIDER_KEY_FILE } from '../crypto/provider-key.js';
import { KEY_FILE as SIGNING_KEYS_FILE } from '../identity/signing-keys.js';
import { LOCK_FILE, openDataDir } from '../ops/data-dir.js';
import { copyLmdb, inspectLmdb, LMDB_FILE } from '../store/backup.js';
import { VERSION } from '../version.js';

export const BACKUP_USAGE = `  amp-relay backup DIR [--compact] [options]
                                 Copy the data dir (--data-dir) into the new or empty DIR: the LMDB
                                 store as of one commit, the provider and AID signing keys,
                                 attachments/. Safe while the server runs; --compact drops free pages
  amp-relay restore DIR [--force] [options]
                                 Restore a backup into --data-dir (not while a server runs on it); a
                                 non-empty dir needs --force, which moves its files to pre-restore-<time>/`;

const MANIFEST = 'backup.json';
const FORMAT = 'amp-relay-backup';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const ATTACHMENTS = 'attachments';
/** Plain files copied besides the store, when present. */
const KEY_FILES = [PROVIDER_KEY_FILE, SIGNING_KEYS_FILE];

interface Manifest {
  format: typeof FORMAT;
  version: 1;
  amp_relay_version: string;
  created_at: string;
  source: string;
  compact: boolean;
  files: { name: string; bytes: number }[];
}

/** A mistake in how the command was called (exit 2). */
class BackupUsageError extends Error {}

type ConfigOf = (args: string[]) => Config;

/** Split `DIR` and the command's own switch from the config flags. */
function parseArgs(cmd: string, rest: string[], own: string): { dir: string; flag: boolean; configArgs: string[] } {
  const positional: string[] = [];
  const configArgs: string[] = [];
  let flag = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === own) flag = true;
    else if (!a.startsWith('--')) positional.push(a);
    else {
      configArgs.push(a);
      if (!a.includes('=') && i + 1 < rest.length && !rest[i + 1].startsWith('--')) configArgs.push(rest[++i]);
    }
  }
  if (positional.length !== 1) throw new BackupUsageError(`${cmd} needs exactly one DIR (got ${positional.length})`);
  return { dir: positional[0], flag, configArgs };
}

function isEmptyDir(dir: string): boolean {
  return readdirSync(dir).length === 0;
}

function copyPrivate(from: string, to: string): void {
  cpSync(from, to, { recursive: true, errorOnExist: true, force: false, preserveTimestamps: true });
  narrow(to);
}

/** Dirs 0700, files 0600, recursively. */
function narrow(path: string): void {
  const st = statSync(path);
  chmodSync(path, st.isDirectory() ? DIR_MODE : FILE_MODE);
  if (st.isDirectory()) for (const e of readdirSync(path)) narrow(join(path, e));
}

export async function backupCommand(rest: string[], configOf: ConfigOf): Promise<number> {
  const { dir, flag: compact, configArgs } = parseArgs('backup', rest, '--compact');
  const { dataDir } = configOf(configArgs);
  if (!existsSync(join(dataDir, LMDB_FILE))) throw new Error(`${dataDir} holds no amp-relay store (${LMDB_FILE})`);
  if (existsSync(dir) && !isEmptyDir(dir)) throw new BackupUsageError(`${dir} is not empty: give a new or empty DIR`);
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  chmodSync(dir, DIR_MODE);
  const files: Manifest['files'] = [];
  const started = Date.now();
  await copyLmdb(dataDir, join(dir, LMDB_FILE), compact);
  await inspectLmdb(join(dir, LMDB_FILE), false); // the copy opens as LMDB
  files.push({ name: LMDB_FILE, bytes: statSync(join(dir, LMDB_FILE)).size });
  for (const name of [...KEY_FILES, ATTACHMENTS]) {
    if (!existsSync(join(dataDir, name))) continue;
    copyPrivate(join(dataDir, name), join(dir, name));
    files.push({ name, bytes: statSync(join(dir, name)).size });
  }
  const manifest: Manifest = {
    format: FORMAT,
    version: 1,
    amp_relay_version: VERSION,
    created_at: new Date(started).toISOString(),
    source: realpathSync(dataDir),
    compact,
    files,
  };
  writeFileSync(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: FILE_MODE });
  const list = files.map((f) => `${f.name} (${f.bytes} bytes)`).join(', ');
  process.stdout.write(`backup of ${manifest.source} written to ${dir} in ${Date.now() - started} ms: ${list}\n`);
  return 0;
}

function readManifest(dir: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (e) {
    throw new BackupUsageError(`${dir} is not a complete amp-relay backup (${MANIFEST}: ${(e as Error).message})`);
  }
  if (m?.format !== FORMAT || !Array.isArray(m.files)) throw new BackupUsageError(`${dir}/${MANIFEST} is not ours`);
  for (const f of m.files) {
    const path = join(dir, f.name);
    if (!existsSync(path)) throw new Error(`the backup lacks ${f.name}, which ${MANIFEST} lists`);
    if (statSync(path).isFile() && statSync(path).size !== f.bytes)
      throw new Error(`${path} has ${statSync(path).size} bytes, ${MANIFEST} says ${f.bytes}: the backup is damaged`);
  }
  return m;
}

/** Warnings of openDataDir (an open dir mode, a stale lock) as text on stderr. */
const stderrLogger = {
  warn: (fields: object, msg: string) => process.stderr.write(`amp-relay: warning: ${msg} ${JSON.stringify(fields)}\n`),
} as unknown as Logger;

/** With --force, what the target held moves to pre-restore-<time>/ inside it; returns that dir. */
function clearTarget(target: string, force: boolean): string | undefined {
  const present = readdirSync(target).filter((n) => n !== LOCK_FILE);
  if (present.length === 0) return undefined;
  if (!force)
    throw new BackupUsageError(
      `${target} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', ...' : ''}); ` +
        'restore into a new dir, or pass --force to move what is there to pre-restore-<time>/',
    );
  const aside = join(target, `pre-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(aside, { mode: DIR_MODE });
  for (const n of present) renameSync(join(target, n), join(aside, n));
  return aside;
}

export async function restoreCommand(rest: string[], configOf: ConfigOf): Promise<number> {
  const { dir, flag: force, configArgs } = parseArgs('restore', rest, '--force');
  const { dataDir } = configOf(configArgs);
  const manifest = readManifest(dir);
  const lock = openDataDir(dataDir, stderrLogger); // refuses a dir a server runs on
  try {
    const aside = clearTarget(lock.dir, force);
    for (const f of manifest.files) copyPrivate(join(dir, f.name), join(lock.dir, f.name));
    await inspectLmdb(join(lock.dir, LMDB_FILE), true);
    const moved = aside ? `; what was there is in ${aside}` : '';
    process.stdout.write(
      `restored the backup of ${manifest.source} (${manifest.created_at}) into ${lock.dir}${moved}\n`,
    );
  } finally {
    lock.release();
  }
  return 0;
}

/** `backup` or `restore`; a usage mistake is exit 2 with a hint, as the CLI's own. */
export async function backupOrRestore(cmd: 'backup' | 'restore', rest: string[], configOf: ConfigOf): Promise<number> {
  try {
    return await (cmd === 'backup' ? backupCommand(rest, configOf) : restoreCommand(rest, configOf));
  } catch (e) {
    if (!(e instanceof BackupUsageError)) throw e;
    process.stderr.write(`amp-relay: ${e.message}\nRun 'amp-relay --help' for usage.\n`);
    return 2;
  }
}
