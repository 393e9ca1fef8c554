// A signing-key file the caller may not read is a permission problem, said as one: never "no
// signing keys" (a wrong data dir) nor "move it away" (which would start a new key set); so is a
// data dir `backup` cannot enter. The CLI runs as another uid with setpriv (the tests run as
// root); skipped, with a message, otherwise.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { ROOT, tempDir } from '../helpers/server.js';

const OTHER_UID = '54321';
const root = tempDir('amp-keyaccess-');
chmodSync(root, 0o711); // others may pass through (not list), as /var/lib
afterAll(() => rmSync(root, { recursive: true, force: true }));

const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const canSwitch = process.getuid?.() === 0 && hasSetpriv;
if (!canSwitch) console.warn('signing-keys-access.test.ts: skipped, needs root and setpriv to run as another uid');

/** `amp-relay <args>` as OTHER_UID. */
function asOther(args: string[]) {
  const r = spawnSync(
    'setpriv',
    [
      '--reuid',
      OTHER_UID,
      '--regid',
      OTHER_UID,
      '--clear-groups',
      process.execPath,
      join(ROOT, 'bin', 'amp-relay.js'),
      ...args,
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' }, timeout: 20_000 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function keyedDir(name: string, mode: number): Promise<string> {
  const dir = join(root, name);
  mkdirSync(dir);
  await SigningKeys.load(dir, 'RS256');
  chmodSync(dir, mode);
  return dir;
}

describe.skipIf(!canSwitch)('a signing-key file the caller may not read', () => {
  const expectPermissionDenied = (r: { status: number | null; stderr: string }, file: string) => {
    expect(r.stderr).toContain(`permission denied reading ${file} (EACCES)`);
    expect(r.stderr).toContain('sudo -u amp-relay');
    expect(r.stderr).not.toContain('no signing keys');
    expect(r.stderr).not.toContain('move it away');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
    expect(r.status).toBe(1);
  };

  it('in a data dir the caller cannot enter (0700, another owner)', async () => {
    const dir = await keyedDir('closed-dir', 0o700);
    for (const cmd of ['signing-keys', 'rotate-signing-key'])
      expectPermissionDenied(asOther([cmd, '--data-dir', dir]), join(dir, 'aid-signing-keys.json'));
  });

  it('a file the caller cannot read (0600, another owner) in an open dir', async () => {
    const dir = await keyedDir('closed-file', 0o755);
    for (const cmd of ['signing-keys', 'rotate-signing-key'])
      expectPermissionDenied(asOther([cmd, '--data-dir', dir]), join(dir, 'aid-signing-keys.json'));
  });

  it('backup of a data dir the caller cannot enter says permission denied, not "no store"', async () => {
    const dir = await keyedDir('closed-backup', 0o700);
    writeFileSync(join(dir, 'amp.lmdb'), '');
    const r = asOther(['backup', join(root, 'bk'), '--data-dir', dir]);
    expect(r.stderr).toContain(`permission denied reading ${join(dir, 'amp.lmdb')} (EACCES)`);
    expect(r.stderr).not.toContain('holds no amp-relay store');
    expect(r.status).toBe(1);
  });

  it('a file that really is not JSON still says so (and only then to restore or move it)', () => {
    const dir = join(root, 'corrupt');
    mkdirSync(dir, { mode: 0o755 });
    writeFileSync(join(dir, 'aid-signing-keys.json'), '{"keys": [', { mode: 0o644 });
    const r = asOther(['signing-keys', '--data-dir', dir]);
    expect(r.stderr).toContain('is not valid JSON');
    expect(r.stderr).toContain('move it away');
    expect(r.status).toBe(1);
  });
});
