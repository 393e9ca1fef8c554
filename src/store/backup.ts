// A consistent copy of the LMDB environment while a server may be writing to it: LMDB's own copy
// (mdb_env_copy2, lmdb-js `backup`) reads everything inside one read transaction, so the copy is
// the store as of one commit, and the writer is never blocked. The copying process opens the
// environment read-only through LMDB's lock file (`amp.lmdb-lock`), as a second reader would;
// it does not touch the server's data dir lock (`amp-relay.lock`).

import { chmodSync, closeSync, existsSync, fstatSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';

/** The LMDB environment file in a data dir (its lock file is this name + `-lock`). */
export const LMDB_FILE = 'amp.lmdb';
const FILE_MODE = 0o600;

// LMDB's data file starts with two meta pages. In each, the meta record follows the page header
// (24 bytes in lmdb-js 3's LMDB): its magic 0xBEEFC0DE (little-endian uint32) at byte 24, and the
// page size at byte 48 (md_pad of the free-page DB). Read from a real amp.lmdb on x86-64 Linux.
const META_MAGIC = 0xbeefc0de;
const MAGIC_AT = 24;
const PAGE_SIZE_AT = 48;
const MIN_PAGE = 512;
const MAX_PAGE = 65536;

function readAt(fd: number, at: number, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  return readSync(fd, buf, 0, bytes, at) === bytes ? buf : Buffer.alloc(bytes);
}

/**
 * Throw unless `file` looks like an LMDB data file: both meta pages carry LMDB's magic, and it
 * holds at least those two pages. lmdb-js may crash the process (SIGSEGV) opening any other file,
 * so this runs before every open of a file that did not come from LMDB itself.
 */
export function checkLmdbFile(file: string): void {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const first = readAt(fd, 0, PAGE_SIZE_AT + 4);
    const page = first.readUInt32LE(PAGE_SIZE_AT);
    const pageOk = page >= MIN_PAGE && page <= MAX_PAGE && (page & (page - 1)) === 0;
    const ok =
      first.readUInt32LE(MAGIC_AT) === META_MAGIC &&
      pageOk &&
      size >= 2 * page &&
      readAt(fd, page + MAGIC_AT, 4).readUInt32LE(0) === META_MAGIC;
    if (!ok) throw new Error(`${file} is not an LMDB store (no LMDB meta pages; ${size} bytes): it is damaged`);
  } finally {
    closeSync(fd);
  }
}

function openReadOnly(path: string) {
  checkLmdbFile(path);
  // permissionsMode: the lock file LMDB may create is 0600, as the server's (typings lack it).
  return open({ path, maxDbs: 32, readOnly: true, compression: false, ...({ permissionsMode: 0o600 } as object) });
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
