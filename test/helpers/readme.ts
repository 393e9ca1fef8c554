// The README's command blocks, as written. Each fenced block in README.md is preceded by a marker:
//
//   <!-- readme-block: <id> runs-in: <test file> -->      the test file runs this block as written
//   <!-- readme-block: <id> not-run: <reason> -->         an example that cannot run here (say why)
//
// Tests fetch a block by id with readmeBlock(id) and run its text; test/unit/readme.test.ts
// checks that every block has a marker and that each named test file asks for its block.

import { readFileSync } from 'node:fs';
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
