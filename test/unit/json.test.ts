// Request-body JSON parsing: strict first, raw control characters inside strings tolerated (the
// brief's curl flow pastes a PEM into a JSON string), nesting bounded.
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, escapeControlCharsInStrings, nestsDeeperThan, parseJsonBody } from '../../proto/index.js';

const pem =
  '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n';

describe('parseJsonBody', () => {
  it("accepts a PEM pasted with raw newlines into a string, as the brief's curl does", () => {
    const text = `{"name": "my-agent", "public_key": "${pem}", "key_algorithm": "Ed25519"}`;
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
    const r = parseJsonBody(text);
    expect(r).toEqual({ ok: true, value: { name: 'my-agent', public_key: pem, key_algorithm: 'Ed25519' } });
  });

  it('escapes only inside strings and keeps escaped quotes intact', () => {
    expect(escapeControlCharsInStrings('{"a": "x\ty\\"\n"}\n')).toBe('{"a": "x\\ty\\"\\n"}\n');
    expect(escapeControlCharsInStrings('{"a":\n1}')).toBe('{"a":\n1}');
    expect(escapeControlCharsInStrings('"\u0001"')).toBe('"\\u0001"');
  });

  it.each(['{"a": 1,}', "{'a': 1}", '{"a": 1', 'nul', '{"a": "x\n}'])('still refuses invalid JSON %j', (text) => {
    const r = parseJsonBody(text);
    expect(r.ok).toBe(false);
  });

  it('refuses nesting deeper than the limit, accepts the limit itself', () => {
    const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
    expect(parseJsonBody(nest(MAX_JSON_DEPTH)).ok).toBe(true);
    const deep = parseJsonBody(nest(MAX_JSON_DEPTH + 1));
    expect(deep).toMatchObject({ ok: false, tooDeep: true });
    expect(parseJsonBody(`{"a":${nest(200_000)}}`)).toMatchObject({ ok: false });
  });

  it('measures depth over objects and arrays alike', () => {
    expect(nestsDeeperThan({ a: { b: [{ c: 1 }] } }, 4)).toBe(false);
    expect(nestsDeeperThan({ a: { b: [{ c: {} }] } }, 4)).toBe(true);
    expect(nestsDeeperThan('scalar', 0)).toBe(false);
  });
});
