// Every command block in README.md runs as written in a test, or says why it cannot: each fenced
// block (except `text` blocks: file trees, sample output) carries a readme-block marker, and the
// test file a `runs-in` marker names exists and fetches that block by id (test/helpers/readme.ts).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ReadmeBlock, readmeBlock, readmeBlocks } from '../helpers/readme.js';
import { ROOT } from '../helpers/server.js';

const blocks = readmeBlocks();
const commandBlocks = blocks.filter((b) => !('lang' in b && b.lang === 'text'));
const marked = blocks.filter((b): b is ReadmeBlock => b.id !== undefined);

describe('README command blocks', () => {
  it('the README has command blocks (the parser finds them)', () => {
    expect(commandBlocks.length).toBeGreaterThan(5);
  });

  it('every command block carries a readme-block marker', () => {
    const unmarked = commandBlocks.filter((b) => b.id === undefined).map((b) => `README.md:${b.line}`);
    expect(unmarked).toEqual([]);
  });

  it('block ids are unique', () => {
    const ids = marked.map((b) => b.id);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('each runs-in test file exists and fetches its block by id', () => {
    const problems: string[] = [];
    for (const b of marked.filter((x) => x.runsIn)) {
      const file = join(ROOT, b.runsIn as string);
      if (!existsSync(file)) {
        problems.push(`${b.id}: ${b.runsIn} does not exist`);
        continue;
      }
      const src = readFileSync(file, 'utf8');
      // readmeBlock('<id>') or runReadmeBlock('<id>', ...), or a local wrapper given '<id>' in a file that calls one.
      const asks =
        src.includes(`Block('${b.id}'`) || (/readmeBlock\(|runReadmeBlock\(/.test(src) && src.includes(`'${b.id}'`));
      if (!asks) problems.push(`${b.id}: ${b.runsIn} never asks for block '${b.id}'`);
    }
    expect(problems).toEqual([]);
  });

  it('each not-run block says why', () => {
    const silent = marked.filter((b) => b.notRun !== undefined && b.notRun.length < 10).map((b) => b.id);
    expect(silent).toEqual([]);
  });

  it('readmeBlock() fails loudly on an unknown id', () => {
    expect(() => readmeBlock('no-such-block')).toThrow(/no block marked/);
  });
});

describe('readmeBlocks() parsing', () => {
  it('reads markers, languages and bodies; a block without a marker has no id', () => {
    const text = [
      '<!-- readme-block: a runs-in: test/x.test.ts -->',
      '',
      '```bash',
      'echo one',
      '```',
      'prose',
      '```ts',
      'let x = 1;',
      '```',
      '<!-- readme-block: c not-run: needs a second machine -->',
      '```bash',
      'ssh elsewhere',
      '```',
    ].join('\n');
    const got = readmeBlocks(text);
    expect(got).toHaveLength(3);
    expect(got[0]).toMatchObject({ id: 'a', lang: 'bash', code: 'echo one\n', runsIn: 'test/x.test.ts', line: 3 });
    expect(got[1].id).toBeUndefined();
    expect(got[2]).toMatchObject({ id: 'c', notRun: 'needs a second machine' });
  });
});
