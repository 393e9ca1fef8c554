// The depth scan that runs before JSON.parse (issue 13 item 8): a too-deep body is refused in one
// linear pass, without JSON.parse, and the scan agrees with "JSON.parse, then measure the depth" on
// every input (fuzzed with a seeded generator, so a failure reproduces).
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  escapeControlCharsInStrings,
  MAX_JSON_DEPTH,
  nestsDeeperThan,
  parseJsonBody,
  parseTextFrame,
  textNestsDeeperThan,
} from '../../proto/index.js';

/** What parseJsonBody decided before the scan: parse (strict, then lenient), then measure. */
function oracle(text: string): { ok: boolean; tooDeep: boolean; value?: unknown } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    try {
      value = JSON.parse(escapeControlCharsInStrings(text));
    } catch {
      return { ok: false, tooDeep: false };
    }
  }
  return nestsDeeperThan(value, MAX_JSON_DEPTH) ? { ok: false, tooDeep: true } : { ok: true, tooDeep: false, value };
}

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY = ['[', ']', '{', '}', '"', '\\', '\\"', '\n', '\t', '\u0001', 'a', 'é', '\\u005b', ' ', ':', ','];

function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) s += TRICKY[Math.floor(r() * TRICKY.length)];
  return s;
}

/** A random JSON value whose nesting reaches about `depth`; only the first child goes deep (size stays linear). */
function randomValue(r: () => number, depth: number): unknown {
  if (depth <= 0) {
    const k = r();
    return k < 0.3 ? randomString(r) : k < 0.5 ? Math.floor(r() * 1000) : k < 0.6 ? null : k < 0.7 ? true : {};
  }
  const width = 1 + Math.floor(r() * 3);
  const children = Array.from({ length: width }, (_, i) =>
    randomValue(r, i === 0 ? depth - 1 : Math.min(1, depth - 2)),
  );
  if (r() < 0.5) return children;
  return Object.fromEntries(children.map((c, i) => [randomString(r) + i, c]));
}

/** JSON text, sometimes with raw control characters in strings, sometimes broken by one edit. */
function randomText(r: () => number): string {
  const depth = Math.floor(r() * (MAX_JSON_DEPTH + 24));
  let text = JSON.stringify(randomValue(r, depth), null, r() < 0.2 ? 1 : undefined);
  if (r() < 0.3) text = text.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
  const edit = r();
  if (edit < 0.3 && text.length > 0) {
    const at = Math.floor(r() * text.length);
    const ins = ['[', ']', '{', '}', '"', '\\', ','][Math.floor(r() * 7)];
    text = edit < 0.15 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ins + text.slice(at);
  }
  return text;
}

describe('textNestsDeeperThan', () => {
  afterEach(() => vi.restoreAllMocks());

  it('gives the verdict of JSON.parse + depth check on 5,000 random inputs', () => {
    const r = rng(13);
    let accepted = 0;
    let deep = 0;
    const mismatches: unknown[] = [];
    for (let i = 0; i < 5000; i++) {
      const text = randomText(r);
      const want = oracle(text);
      const got = parseJsonBody(text);
      // Invalid JSON stays refused; its message may name the depth when it is also too deep.
      const same = want.ok
        ? got.ok && JSON.stringify(got.value) === JSON.stringify(want.value)
        : !got.ok && (!want.tooDeep || got.tooDeep === true);
      if (!same) mismatches.push({ text, want, got });
      accepted += want.ok ? 1 : 0;
      deep += want.tooDeep ? 1 : 0;
    }
    expect(mismatches.slice(0, 3)).toEqual([]);
    // The generator covers all three verdicts in quantity.
    expect(accepted).toBeGreaterThan(500);
    expect(deep).toBeGreaterThan(500);
    expect(5000 - accepted - deep).toBeGreaterThan(500);
  });

  it('ignores brackets inside strings and honours escapes', () => {
    expect(textNestsDeeperThan('["[[[[", "\\"[[["]', 1)).toBe(false);
    expect(textNestsDeeperThan('["\\\\", [[]]]', 2)).toBe(true);
    expect(textNestsDeeperThan(`{"pem": "a\n[[[\n"}`, 1)).toBe(false);
  });

  it('refuses a 540k-deep array without calling JSON.parse, with the error of a too-deep body', () => {
    const n = 540_000;
    const body = '['.repeat(n) + ']'.repeat(n);
    const parse = vi.spyOn(JSON, 'parse');
    expect(parseJsonBody(body)).toEqual({
      ok: false,
      error: `JSON nests deeper than ${MAX_JSON_DEPTH} levels`,
      tooDeep: true,
    });
    expect(() => parseTextFrame(body)).toThrow(`Frame refused: JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
    expect(parse).not.toHaveBeenCalled();
  });
});
