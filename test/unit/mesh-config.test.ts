// The mesh configuration file (§19.2, AMP_MESH_CONFIG): what parses, and how each problem is named.

import { describe, expect, it } from 'vitest';
import { MeshConfigError, parseMeshConfig } from '../../src/relay/mesh/config.js';
import { readmeBlock } from '../helpers/readme.js';
import { newKeypair } from '../helpers/server.js';

const SECRET = 'a-shared-secret-0123';
const SRC = 'AMP_MESH_CONFIG /etc/mesh.json';

function problems(doc: unknown): string[] {
  try {
    parseMeshConfig(typeof doc === 'string' ? doc : JSON.stringify(doc), SRC);
  } catch (e) {
    if (e instanceof MeshConfigError) return e.problems;
    throw e;
  }
  return [];
}

const host = (extra: Record<string, unknown> = {}) => ({
  id: 'server-01',
  url: 'http://10.0.0.5:23000',
  secret: SECRET,
  ...extra,
});

describe('parseMeshConfig', () => {
  it('reads the wrapped and the bare form, and strips /, /v1 and /api/v1 from URLs', () => {
    const key = newKeypair().publicPem;
    const doc = {
      self_id: 'macbook',
      hosts: [
        host(),
        { id: 'b', url: 'http://10.0.0.6:23000/v1', public_key: key },
        { id: 'c', url: 'https://c.lan/amp/api/v1/', secret: SECRET },
      ],
    };
    for (const text of [JSON.stringify({ mesh: doc }), JSON.stringify(doc)]) {
      const c = parseMeshConfig(text, SRC);
      expect(c.selfId).toBe('macbook');
      expect(c.hosts.map((h) => h.url)).toEqual([
        'http://10.0.0.5:23000',
        'http://10.0.0.6:23000',
        'https://c.lan/amp',
      ]);
      expect(c.hosts[0].auth).toEqual({ kind: 'secret', secret: SECRET });
      expect(c.hosts[1].auth.kind).toBe('key');
    }
  });

  it.each([
    ['not JSON', '{', /is not valid JSON/],
    ['not an object', '[1]', /must be a JSON object/],
    ['a bad self_id', { self_id: 'Mac_Book', hosts: [host()] }, /self_id must be a lowercase DNS label/],
    ['no hosts', { self_id: 'a', hosts: [] }, /hosts must be a non-empty array/],
    ['a host that is self', { self_id: 'server-01', hosts: [host()] }, /hosts\[0\]\.id 'server-01' is self_id/],
    ['a host listed twice', { self_id: 'a', hosts: [host(), host()] }, /hosts\[1\]\.id 'server-01' is listed twice/],
    ['a bad host id', { self_id: 'a', hosts: [host({ id: 'x.y' })] }, /hosts\[0\]\.id must be a lowercase DNS label/],
    ['a URL with a query', { self_id: 'a', hosts: [host({ url: 'http://h/?x=1' })] }, /hosts\[0\]\.url must be/],
    ['a non-http URL', { self_id: 'a', hosts: [host({ url: 'ftp://h' })] }, /hosts\[0\]\.url must be an http\(s\)/],
    ['a short secret', { self_id: 'a', hosts: [host({ secret: 'short' })] }, /secret must be a string of at least 16/],
    [
      'both secret and key',
      { self_id: 'a', hosts: [host({ public_key: newKeypair().publicPem })] },
      /needs exactly one of secret .* or public_key/,
    ],
    ['neither', { self_id: 'a', hosts: [{ id: 'b', url: 'http://h' }] }, /hosts\[0\] needs exactly one of secret/],
    [
      'a private key',
      { self_id: 'a', hosts: [{ id: 'b', url: 'http://h', public_key: newKeypair().privatePem }] },
      /public_key is a private key/,
    ],
    [
      'a key that is not PEM',
      { self_id: 'a', hosts: [{ id: 'b', url: 'http://h', public_key: 'abc' }] },
      /public_key must be an Ed25519 public key in PEM/,
    ],
    ['a misspelt field', { self_id: 'a', hosts: [host({ secert: 'x' })] }, /hosts\[0\]\.secert is not a host field/],
  ])('refuses %s, naming the file', (_what, doc, why) => {
    const p = problems(doc);
    expect(p.length).toBeGreaterThan(0);
    expect(p.join('\n')).toMatch(why);
    for (const line of p) expect(line.startsWith(SRC)).toBe(true);
  });
});

describe("the README's mesh example", () => {
  it('parses as written', () => {
    const c = parseMeshConfig(readmeBlock('mesh-config'), 'README mesh-config');
    expect(c.selfId).toBe('macbook');
    expect(c.hosts).toEqual([
      {
        id: 'server-01',
        url: 'http://10.0.0.5:23000',
        auth: { kind: 'secret', secret: 'change-me-to-a-long-random-secret' },
      },
    ]);
  });
});
