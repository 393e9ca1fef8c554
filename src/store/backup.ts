// A consistent copy of the LMDB environment while a server may be writing to it: LMDB's own copy
// (mdb_env_copy2, lmdb-js `backup`) reads everything inside one read transaction, so the copy is
// the store as of one commit, and the writer is never blocked. The copying process opens the
// environment read-only through LMDB's lock file (`amp.lmdb-lock`), as a second reader would;
// it does not touch the server's data dir lock (`amp-relay.lock`).

import { chmodSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';

/** The LMDB environment file in a data dir (its lock file is this name + `-lock`). */
export const LMDB_FILE = 'amp.lmdb';
const FILE_MODE = 0o600;

function openReadOnly(path: string) {
  // permissionsMode: the lock file LMDB may create is 0600, as the server's (typings lack it).
  return open({ path, maxDbs: 16, readOnly: true, compression: false, ...({ permissionsMode: 0o600 } as object) });
}

/**
 * Copy `<dataDir>/amp.lmdb` to `destFile` (which must not exist) as of one commit. `compact`
 * leaves out free pages (smaller, slower). The copy is made 0600.
 */
export async function copyLmdb(dataDir: string, destFile: string, compact: boolean): Promise<void> {
  const path = join(dataDir, LMDB_FILE);
  if (!existsSync(path)) throw new Error(`no LMDB store in ${dataDir} (${LMDB_FILE} is missing)`);
  if (existsSync(destFile)) throw new Error(`${destFile} already exists`);
  const env = openReadOnly(path);
  try {
    await env.backup(destFile, compact);
  } finally {
    await env.close();
  }
  chmodSync(destFile, FILE_MODE);
}

/**
 * Open a copied environment read-only and count the entries of its main database (the named
 * databases); throws when the file is not an LMDB environment. `keepLock` false removes the
 * `-lock` file LMDB creates beside it (a backup holds no lock file).
 */
export async function inspectLmdb(file: string, keepLock: boolean): Promise<{ entries: number }> {
  const hadLock = existsSync(`${file}-lock`);
  const env = openReadOnly(file);
  try {
    let entries = 0;
    for (const _ of env.getKeys()) entries++;
    return { entries };
  } finally {
    await env.close();
    if (!keepLock && !hadLock) rmSync(`${file}-lock`, { force: true });
  }
}
