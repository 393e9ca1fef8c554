// `check-config`: can the server create and write its data dir? Checked without creating anything:
// an existing dir must be a directory we may write; a missing one needs its nearest existing
// ancestor to be a directory we may write (mkdir -p from there). access(2) answers for this user,
// so root passes on a 0500 dir (root can write there) but not on a read-only mount (EROFS).

import { accessSync, constants, lstatSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Why the server could not use `dataDir`, or undefined when it can. */
export function dataDirProblem(dataDir: string, name: string): string | undefined {
  const dir = resolve(dataDir);
  let at = dir;
  while (!exists(at) && dirname(at) !== at) at = dirname(at);
  const what = at === dir ? `${name} ${dataDir}` : `${name} ${dataDir} cannot be created: ${at}`;
  try {
    if (!statSync(at).isDirectory()) return `${what} is not a directory`;
    accessSync(at, constants.W_OK | constants.X_OK);
    if (at === dir) accessSync(at, constants.R_OK);
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EROFS') return `${what} is on a read-only file system`;
    if (err.code === 'EACCES' || err.code === 'EPERM') return `${what} is not writable by this user (uid ${uid()})`;
    return `${what}: ${err.message}`;
  }
}

/** lstat, so a dangling symlink counts as there (mkdir would fail on it, and statSync says why). */
function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function uid(): number | string {
  return process.getuid?.() ?? 'unknown';
}
