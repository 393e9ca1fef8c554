// One door for node:crypto: only src/crypto/ imports it in src/ (proto/ keeps its own, being pure
// protocol code). And the small helpers behind the door behave as the callers relied on.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { safeEqual, sha256Base64, sha256Hex } from '../../src/crypto/hash.js';
import { randomToken, randomUUID } from '../../src/crypto/random.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('node:crypto door', () => {
  it('is imported in src/ by src/crypto/ only', () => {
    const importers = tsFiles(SRC)
      .filter((f) => /from ['"](node:)?crypto['"]/.test(readFileSync(f, 'utf8')))
      .map((f) => f.slice(SRC.length));
    expect(importers.length).toBeGreaterThan(0);
    expect(importers.filter((f) => !f.startsWith('crypto/'))).toEqual([]);
  });
});

describe('src/crypto helpers', () => {
  it('sha256 in hex and base64, strings as UTF-8', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Base64(Buffer.from('abc'))).toBe('ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=');
    expect(sha256Hex('é')).toBe(sha256Hex(Buffer.from('é', 'utf8')));
  });

  it('safeEqual compares UTF-8 bytes, and answers false (never throws) when their lengths differ', () => {
    expect(safeEqual('SHA256:abc', 'SHA256:abc')).toBe(true);
    expect(safeEqual('SHA256:abc', 'SHA256:abd')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
    // Same JS length, different byte length: node's timingSafeEqual alone would throw.
    expect(safeEqual('éa', 'ab')).toBe(false);
  });

  it('random ids and tokens have their shapes', () => {
    expect(randomUUID()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(randomToken(32)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(randomToken(32)).not.toBe(randomToken(32));
  });
});
