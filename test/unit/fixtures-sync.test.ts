// The repo carries its own copy of the spec files its tests read (test/fixtures/), so a clone with no
// ../shared beside it runs every test. When ../shared/spec is there, each copy must equal it byte for
// byte: a spec change shows up here first. Refresh with: cp ../shared/spec/<file> test/fixtures/
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/server.js';

const FIXTURES = join(ROOT, 'test', 'fixtures');
const SHARED_SPEC = join(ROOT, '..', 'shared', 'spec');
const COPIES = ['test-vectors.json', 'agent-identity.md'];
const haveShared = existsSync(SHARED_SPEC);

if (!haveShared) {
  console.warn(`fixtures-sync: ${SHARED_SPEC} does not exist; the comparison with the shared spec is skipped`);
}

/** A path into ../shared in code: '../shared/…', join(…, '..', 'shared', …), /work/shared/… */
const SHARED_PATH = /(\.\.\/|\/|['"])shared['"/]/;

/** The lines that are not comments (// and # lines, and the * lines of block comments). */
function codeLines(text: string): string[] {
  return text.split('\n').filter((l) => !/^\s*(\/\/|#|\*|\/\*)/.test(l));
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'fixtures') return [];
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('spec fixtures', () => {
  for (const name of COPIES) {
    it(`test/fixtures/${name} exists and is not empty`, () => {
      expect(readFileSync(join(FIXTURES, name)).length).toBeGreaterThan(1000);
    });

    it.skipIf(!haveShared)(`test/fixtures/${name} equals ../shared/spec/${name} (skipped without ../shared)`, () => {
      const copy = readFileSync(join(FIXTURES, name));
      const shared = readFileSync(join(SHARED_SPEC, name));
      expect(copy.equals(shared), `test/fixtures/${name} differs from ../shared/spec/${name}; copy it again`).toBe(
        true,
      );
    });
  }

  it('no test, source file or script reads ../shared', () => {
    const roots = ['test', 'src', 'proto', 'scripts', 'bin', 'bench'].map((d) => join(ROOT, d));
    const self = join(ROOT, 'test', 'unit', 'fixtures-sync.test.ts');
    const readers = roots
      .flatMap(filesUnder)
      .filter((f) => f !== self && /\.(ts|mjs|js|sh|py)$/.test(f))
      .filter((f) => codeLines(readFileSync(f, 'utf8')).some((l) => SHARED_PATH.test(l)))
      .map((f) => relative(ROOT, f));
    expect(readers).toEqual([]);
  });
});
