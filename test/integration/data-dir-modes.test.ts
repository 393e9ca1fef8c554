// The data dir holds message bodies and API key hashes: dir 0700, files 0600, and a warning when an
// existing dir is open to other users (issue 13 item 4).

import { chmodSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { register, startTestServer, tempDir } from '../helpers/server.js';

const parents: string[] = [];
afterEach(() => {
  for (const d of parents.splice(0)) rmSync(d, { recursive: true, force: true });
});

function parent(): string {
  const d = tempDir('amp-modes-');
  parents.push(d);
  return d;
}

/** A pino logger whose lines the test reads back. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, warnings: () => records().filter((r) => r.level === 40) };
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('data dir permissions', () => {
  it('creates a new data dir 0700 and every file in it 0600, without warnings', async () => {
    const dataDir = join(parent(), 'data');
    const log = capturingLogger();
    const t = await startTestServer({ dataDir, logger: log.logger });
    try {
      await register(t.api, 'writer'); // the store has written
      expect(mode(dataDir).toString(8)).toBe('700');
      const files = readdirSync(dataDir).sort();
      expect(files).toEqual([
        'aid-signing-keys.json',
        'amp-relay.lock',
        'amp.lmdb',
        'amp.lmdb-lock',
        'attachments',
        'provider-ed25519.pem',
      ]);
      // Files 0600; attachments/ (and its tmp/) 0700.
      const want = (f: string) => (f.startsWith('attachments') ? '700' : '600');
      for (const f of [...files, 'attachments/tmp'])
        expect(`${f} ${mode(join(dataDir, f)).toString(8)}`).toBe(`${f} ${want(f)}`);
      expect(log.warnings()).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('warns with the path and mode when an existing data dir is 0755, and narrows files of 0644', async () => {
    const dataDir = join(parent(), 'data');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o755);
    const first = await startTestServer({ dataDir });
    await first.close();
    for (const f of ['amp.lmdb', 'provider-ed25519.pem']) chmodSync(join(dataDir, f), 0o644);

    const log = capturingLogger();
    const t = await startTestServer({ dataDir, logger: log.logger });
    try {
      const dir = realpathSync(dataDir);
      expect(log.warnings()).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dataDir: dir, mode: '0755' }),
          expect.objectContaining({ path: join(dir, 'amp.lmdb'), mode: '0644' }),
          expect.objectContaining({ path: join(dir, 'provider-ed25519.pem'), mode: '0644' }),
        ]),
      );
      expect(mode(dataDir).toString(8)).toBe('755'); // the operator's dir is reported, not changed
      for (const f of ['amp.lmdb', 'provider-ed25519.pem']) expect(mode(join(dataDir, f)).toString(8)).toBe('600');
    } finally {
      await t.close();
    }
  });
});
