// The scanner as it runs in production: compiled to dist/, its worker thread a plain .js file
// (under vitest the .ts sources run, with a tsx bootstrap in the worker). A node process imports
// dist/src/attachments/scan and scans real files.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

let dir: string;

function run(
  file: string,
  args: string[],
  timeout = 300_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, timeout }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

setupOrFailEveryTest(async () => {
  dir = mkdtempSync(join(tmpdir(), 'amp-scan-dist-'));
  const built = await run(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')]);
  if (built.code !== 0) throw new Error(`ensure-built failed: ${built.stderr}`);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SCRIPT = `
import { createScanner } from './dist/src/attachments/scan/index.js';
const jobs = JSON.parse(process.argv[1]);
const scanner = createScanner({});
const out = [];
for (const job of jobs) out.push(await scanner.scan(job));
await scanner.close();
console.log(JSON.stringify(out));
`;

describe('compiled scanner (dist/)', () => {
  it('runs its .js worker: a clean text is basic_clean, an ELF renamed .txt rejected', async () => {
    const job = (name: string, data: Buffer, contentType: string) => {
      const path = join(dir, name);
      writeFileSync(path, data);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      return { path, size: data.length, digest, contentType, filename: name };
    };
    const jobs = [
      job('a.txt', Buffer.from('hello\n'), 'text/plain'),
      job('b.txt', Buffer.from('7f454c4602010100', 'hex'), 'text/plain'),
    ];
    const r = await run(process.execPath, ['--input-type=module', '-e', SCRIPT, JSON.stringify(jobs)], 30_000);
    expect(r.code, r.stderr).toBe(0);
    const [clean, elf] = JSON.parse(r.stdout);
    expect(clean).toEqual({ status: 'basic_clean', reasons: [] });
    expect(elf.status).toBe('rejected');
    expect(elf.reasons).toContain('executable_magic:elf');
  });
});
