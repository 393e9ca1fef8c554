// The README's command blocks, as written. Each fenced block in README.md is preceded by a marker:
//
//   <!-- readme-block: <id> runs-in: <test file> -->      the test file runs this block as written
//   <!-- readme-block: <id> not-run: <reason> -->         an example that cannot run here (say why)
//
// Tests fetch a block by id with readmeBlock(id) and run its text; test/unit/readme.test.ts
// checks that every block has a marker and that each named test file asks for its block.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ReadmeBlock {
  id: string;
  lang: string;
  code: string;
  runsIn?: string;
  notRun?: string;
  /** 1-based line of the opening fence. */
  line: number;
}

const MARKER = /^<!--\s*readme-block:\s*([\w.-]+)\s+(runs-in|not-run):\s*(.*?)\s*-->\s*$/;

export function readmeText(): string {
  return readFileSync(join(ROOT, 'README.md'), 'utf8');
}

/** Every fenced block of the README, with its marker when the line before the fence holds one. */
export function readmeBlocks(text = readmeText()): (ReadmeBlock | { id: undefined; line: number; code: string })[] {
  const lines = text.split('\n');
  const out: (ReadmeBlock | { id: undefined; line: number; code: string })[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    const code = `${body.join('\n')}\n`;
    let j = start - 1;
    while (j >= 0 && lines[j].trim() === '') j--;
    const m = j >= 0 ? MARKER.exec(lines[j].trim()) : null;
    if (!m) {
      out.push({ id: undefined, line: start + 1, code });
      continue;
    }
    const block: ReadmeBlock = { id: m[1], lang: open[2], code, line: start + 1 };
    if (m[2] === 'runs-in') block.runsIn = m[3];
    else block.notRun = m[3];
    out.push(block);
  }
  return out;
}

/** The text of the README block with this id (throws when there is none, so a renamed block fails its test). */
export function readmeBlock(id: string): string {
  const block = readmeBlocks().find((b) => b.id === id);
  if (!block) throw new Error(`README.md has no block marked readme-block: ${id}`);
  return block.code;
}

/** The README's own address for the server, which tests replace by the test server's. */
export const README_URL = 'http://localhost:23000';

/**
 * A temp project dir where `npx amp-relay …` (and `npx amp-send …`) resolve to this checkout, as
 * they do in the checkout itself after `npm ci`: node_modules/.bin links to every package bin. A
 * README block run there with real npx touches nothing in the repo (its ./data is the temp dir's).
 */
export function npxSandbox(dir: string): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const bin = join(dir, 'node_modules', '.bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"name":"readme-sandbox","private":true}\n');
  for (const [name, target] of Object.entries(pkg.bin)) symlinkSync(join(ROOT, target), join(bin, name));
  return dir;
}

/** Run a README block with bash (errexit, pipefail) in `cwd`, the README's URL pointed at `url`. */
export function runReadmeBlock(
  id: string,
  opts: { cwd: string; url?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): { status: number | null; stdout: string; stderr: string } {
  let code = readmeBlock(id);
  if (opts.url) code = code.replaceAll(README_URL, opts.url).replaceAll('localhost:23000', new URL(opts.url).host);
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', code], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
