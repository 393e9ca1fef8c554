// What `amp-relay backup` and `amp-relay restore` share: the manifest, the names a backup may hold,
// argument parsing, and private copies (dirs 0700, files 0600, as the server makes them).

import { chmodSync, cpSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROVIDER_KEY_FILE } from '../crypto/provider-key.js';
import { KEY_FILE as SIGNING_KEYS_FILE } from '../identity/signing-keys.js';
import { LMDB_FILE } from '../store/backup.js';

export const MANIFEST = 'backup.json';
export const FORMAT = 'amp-relay-backup';
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;
export const ATTACHMENTS = 'attachments';
/** Plain files copied besides the store, when present. */
export const KEY_FILES = [PROVIDER_KEY_FILE, SIGNING_KEYS_FILE];
/** Every name a backup may list (restore accepts no other: no path, no `..`). Only attachments is a dir. */
export const BACKUP_NAMES: readonly string[] = [LMDB_FILE, ...KEY_FILES, ATTACHMENTS];

export interface Manifest {
  format: typeof FORMAT;
  version: 1;
  amp_relay_version: string;
  created_at: string;
  source: string;
  compact: boolean;
  files: { name: string; bytes: number }[];
}

/** A mistake in how the command was called, or a backup it refuses (exit 2). */
export class BackupUsageError extends Error {}

/** Split `DIR` and the command's own switch from the config flags. */
export function parseArgs(
  cmd: string,
  rest: string[],
  own: string,
): { dir: string; flag: boolean; configArgs: string[] } {
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

/**
 * Copy a file or a dir tree (`to` must not exist), then make it private. A symlink inside is left
 * out, with a warning on stderr, so a copy run as root never reads or changes what a link points
 * to; `from` itself must not be a link. `leaveOut` names more paths not to copy.
 */
export function copyPrivate(from: string, to: string, leaveOut: (src: string) => boolean = () => false): void {
  if (lstatSync(from).isSymbolicLink())
    throw new BackupUsageError(`${from} is a symlink: backup and restore copy no symlinks (make it a plain file)`);
  cpSync(from, to, {
    recursive: true,
    errorOnExist: true,
    force: false,
    preserveTimestamps: true,
    filter: (src) => {
      if (leaveOut(src)) return false;
      if (!lstatSync(src).isSymbolicLink()) return true;
      process.stderr.write(`amp-relay: warning: ${src} is a symlink: left out (backup and restore copy no links)\n`);
      return false;
    },
  });
  narrow(to);
}

/** Dirs 0700, files 0600, recursively; a symlink is never followed nor changed. */
export function narrow(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  chmodSync(path, st.isDirectory() ? DIR_MODE : FILE_MODE);
  if (st.isDirectory()) for (const e of readdirSync(path)) narrow(join(path, e));
}
