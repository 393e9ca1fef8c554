// The shape of src/ (DESIGN.md "Layout", STYLE.md "Shape"): no import cycles, each library behind
// its one door, short lines and functions. Reads the sources with the TypeScript parser.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');
const MAX_FUNCTION_LINES = 80;
const MAX_LINE_CHARS = 120;
const MAX_LONG_LINE_SHARE = 0.005;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const files = sourceFiles(SRC);
const parsed = new Map(
  files.map((f) => [f, ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.ES2022, true)]),
);
const rel = (f: string) => relative(SRC, f);

/** Module specifiers of every import and re-export, type-only ones included. */
function specifiers(sf: ts.SourceFile): string[] {
  const out: string[] = [];
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier) {
      out.push((st.moduleSpecifier as ts.StringLiteral).text);
    }
  }
  return out;
}

function localImports(file: string): string[] {
  return specifiers(parsed.get(file)!)
    .filter((s) => s.startsWith('.'))
    .map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')))
    .filter((p) => parsed.has(p));
}

function findCycles(): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'active');
    stack.push(f);
    for (const dep of localImports(f)) {
      if (state.get(dep) === 'active') cycles.push([...stack.slice(stack.indexOf(dep)), dep].map(rel));
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  return cycles;
}

/** Which directory under src/ may import each library. */
const DOORS: { library: RegExp; door: string }[] = [
  { library: /^uWebSockets\.js$/, door: 'transport/' },
  { library: /^lmdb$/, door: 'store/' },
  // Cluster mode (issue 18): NATS JetStream behind the same door.
  { library: /^@nats-io\//, door: 'store/' },
  { library: /^jose$/, door: 'identity/' },
  { library: /^(node:)?crypto$/, door: 'crypto/' },
  { library: /^(prom-client|pino-pretty)$/, door: 'ops/' },
  // One MessagePack codec, in proto/.
  { library: /^msgpackr$/, door: '(none: proto/)' },
];

function functionSpans(sf: ts.SourceFile): { name: string; lines: number }[] {
  const out: { name: string; lines: number }[] = [];
  const walk = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = (node as ts.FunctionLikeDeclaration).name?.getText(sf) ?? `<anonymous at ${start + 1}>`;
      out.push({ name: `${rel(sf.fileName)}:${start + 1} ${name}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, walk);
  };
  walk(sf);
  return out;
}

describe('architecture of src/', () => {
  it('has no import cycle (type-only imports count too)', () => {
    expect(findCycles()).toEqual([]);
  });

  it('imports each library only behind its door', () => {
    const offenders: string[] = [];
    for (const [file, sf] of parsed) {
      for (const s of specifiers(sf)) {
        for (const { library, door } of DOORS) {
          if (library.test(s) && !rel(file).startsWith(door)) offenders.push(`${rel(file)} imports ${s}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it(`keeps lines over ${MAX_LINE_CHARS} characters under ${MAX_LONG_LINE_SHARE * 100} %`, () => {
    let total = 0;
    const long: string[] = [];
    for (const [file, sf] of parsed) {
      sf.text.split('\n').forEach((line, i) => {
        total++;
        if (line.length > MAX_LINE_CHARS) long.push(`${rel(file)}:${i + 1}`);
      });
    }
    expect(long.length / total, long.join('\n')).toBeLessThan(MAX_LONG_LINE_SHARE);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    const longFns = [...parsed.values()]
      .flatMap(functionSpans)
      .filter((f) => f.lines > MAX_FUNCTION_LINES)
      .map((f) => `${f.name} (${f.lines} lines)`);
    expect(longFns).toEqual([]);
  });
});
