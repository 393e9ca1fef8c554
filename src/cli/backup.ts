// `amp-relay backup DIR` and `amp-relay restore DIR`.
//
// backup: a consistent copy of a data dir, also while its server runs. The LMDB store is copied
// inside one read transaction (store/backup.ts), so it is the store as of one commit: every
// request answered before the backup started is in it. The provider key, the AID signing keys
// and an `attachments/` dir are copied as files (the signing keys file is replaced whole by
// rename, never written in place). The server's lock (`amp-relay.lock`) is neither taken nor
// touched. `backup.json` is written last: a backup without it is incomplete.
//
// restore: src/cli/restore.ts. A backup DIR inside the data dir is refused (it would be lost with the
// data dir, and restore --force would move it aside before reading it).

import { chmodSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { copyLmdb, inspectLmdb, LMDB_FILE } from '../store/backup.js';
import { VERSION } from '../version.js';
import {
  ATTACHMENTS,
  BackupUsageError,
  copyPrivate,
  DIR_MODE,
  FILE_MODE,
  FORMAT,
  KEY_FILES,
  MANIFEST,
  type Manifest,
  parseArgs,
} from './backup-common.js';
import { isInside, restoreCommand } from './restore.js';

export const BACKUP_USAGE = `  amp-relay backup DIR [--compact] [options]
                                 Copy the data dir (--data-dir) into the new or empty DIR: the LMDB
                                 store as of one commit, the provider and AID signing keys,
                                 attachments/. Safe while the server runs; --compact drops free pages
  amp-relay restore DIR [--force] [options]
                                 Restore a backup into --data-dir (not while a server runs on it); a
                                 non-empty dir needs --force, which moves its files to pre-restore-<time>/`;

type ConfigOf = (args: string[]) => Config;

/** Whether `path` exists; only its absence is false (a permission error is said as one, not as "missing"). */
function present(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'EACCES' || code === 'EPERM')
      throw new Error(`permission denied reading ${path} (${code}): run this as the server's user or root`);
    throw e;
  }
}

function isEmptyDir(dir: string): boolean {
  return readdirSync(dir).length === 0;
}

export async function backupCommand(rest: string[], configOf: ConfigOf): Promise<number> {
  const { dir, flag: compact, configArgs } = parseArgs('backup', rest, '--compact');
  const { dataDir } = configOf(configArgs);
  if (!present(join(dataDir, LMDB_FILE))) throw new Error(`${dataDir} holds no amp-relay store (${LMDB_FILE})`);
  if (isInside(dir, dataDir))
    throw new BackupUsageError(`${dir} is inside the data dir ${dataDir}: give a DIR outside it`);
  if (existsSync(dir) && !isEmptyDir(dir)) throw new BackupUsageError(`${dir} is not empty: give a new or empty DIR`);
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  chmodSync(dir, DIR_MODE);
  const files: Manifest['files'] = [];
  const started = Date.now();
  await copyLmdb(dataDir, join(dir, LMDB_FILE), compact);
  await inspectLmdb(join(dir, LMDB_FILE), false); // the copy opens as LMDB
  files.push({ name: LMDB_FILE, bytes: statSync(join(dir, LMDB_FILE)).size });
  for (const name of [...KEY_FILES, ATTACHMENTS]) {
    if (!present(join(dataDir, name))) continue;
    // Partial uploads (attachments/tmp) are of no use in a backup: a restarted server drops them.
    const partial = join(dataDir, ATTACHMENTS, 'tmp');
    copyPrivate(join(dataDir, name), join(dir, name), (src) => src === partial);
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
