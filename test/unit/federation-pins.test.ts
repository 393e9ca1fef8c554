// The AMP_FEDERATION_PINS file and the DNS TXT record of a provider (spec §19.1): what is accepted,
// and that every problem is named (the configuration refuses a bad pins file at start).

import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/schema.js';
import { parseAllowList } from '../../src/outbound/allow-list.js';
import { parsePins } from '../../src/relay/federation/pins.js';
import { parseAmpTxt, parseRecord } from '../../src/relay/federation/txt.js';
import { tempDir } from '../helpers/server.js';

const pem = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }) as string;
const FP = `SHA256:${'A'.repeat(43)}=`;
const noHttp = parseAllowList('').allow;
const loopHttp = parseAllowList('127.0.0.1,localhost').allow;
const pins = (doc: unknown, allow = noHttp) => parsePins(JSON.stringify(doc), 'PINS', allow);

describe('pins file', () => {
  it('accepts PEM and fingerprint pins; endpoints end in /v1 or /api/v1 (a trailing slash is dropped)', () => {
    const r = pins({
      'b.example': { endpoint: 'https://amp.b.example/v1/', public_key: pem },
      'c.example': { endpoint: 'https://c.example/api/v1', public_key: FP },
    });
    expect(r.problems).toEqual([]);
    expect(r.pins[0]).toMatchObject({ domain: 'b.example', endpoint: 'https://amp.b.example/v1' });
    expect(r.pins[0]!.publicKeyPem).toContain('BEGIN PUBLIC KEY');
    expect(r.pins[0]!.fingerprint).toMatch(/^SHA256:/);
    expect(r.pins[1]).toEqual({ domain: 'c.example', endpoint: 'https://c.example/api/v1', fingerprint: FP });
  });

  it('http only for AMP_FEDERATION_ALLOW_HTTP hosts', () => {
    const doc = { 'b.example': { endpoint: 'http://127.0.0.1:9/v1', public_key: FP } };
    expect(pins(doc).problems[0]).toMatch(/must be https/);
    expect(pins(doc, loopHttp).problems).toEqual([]);
  });

  it.each([
    ['not json', '{', /not valid JSON/],
    ['an array', '[]', /must be a JSON object/],
    [
      'a bad domain',
      JSON.stringify({ localhost: { endpoint: 'https://x.example/v1', public_key: FP } }),
      /'localhost' is not a lowercase domain/,
    ],
    ['no endpoint', JSON.stringify({ 'b.example': { public_key: FP } }), /needs endpoint/],
    [
      'a bad path',
      JSON.stringify({ 'b.example': { endpoint: 'https://b.example/amp', public_key: FP } }),
      /must end in \/v1/,
    ],
    [
      'a query',
      JSON.stringify({ 'b.example': { endpoint: 'https://b.example/v1?x=1', public_key: FP } }),
      /no credentials, query/,
    ],
    ['no key', JSON.stringify({ 'b.example': { endpoint: 'https://b.example/v1' } }), /needs public_key/],
    [
      'a bad key',
      JSON.stringify({ 'b.example': { endpoint: 'https://b.example/v1', public_key: 'SHA256:xyz' } }),
      /Ed25519 public key in PEM or a SHA256/,
    ],
    [
      'an unknown field',
      JSON.stringify({ 'b.example': { endpoint: 'https://b.example/v1', public_key: FP, url: 1 } }),
      /unknown field\(s\) url/,
    ],
  ])('names the problem: %s', (_what, text, re) => {
    const r = parsePins(text, 'PINS', noHttp);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(/^PINS/);
    expect(r.problems[0]).toMatch(re);
  });

  it('loadConfig refuses a bad pins file, naming the setting and the file', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'pins.json');
      writeFileSync(file, JSON.stringify({ 'b.example': { endpoint: 'http://b.example/v1', public_key: FP } }));
      const env = { AMP_FEDERATION_PINS: file };
      expect(() => loadConfig({ env })).toThrow(ConfigError);
      expect(() => loadConfig({ env })).toThrow(
        /AMP_FEDERATION_PINS \(.*pins\.json\): 'b\.example' endpoint .* must be https/,
      );
      expect(() => loadConfig({ env: { AMP_FEDERATION_PINS: join(dir, 'missing.json') } })).toThrow(/cannot read/);
      writeFileSync(file, JSON.stringify({ 'b.example': { endpoint: 'https://b.example/v1', public_key: FP } }));
      expect(loadConfig({ env }).federationPins).toBe(file);
      expect(() => loadConfig({ env: { ...env, AMP_FEDERATION_ALLOW: 'c.example,http://x' } })).toThrow(
        /AMP_FEDERATION_ALLOW entries are provider domains .*'http:\/\/x'/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DNS TXT _amp._tcp.<domain>', () => {
  it('reads v=AMP1; endpoint=…; pubkey=… (spaces, case of keys, unknown keys, split strings)', () => {
    expect(parseRecord(`v=AMP1; endpoint=https://amp.b.example/v1; pubkey=${FP}`)).toEqual({
      endpoint: 'https://amp.b.example/v1',
      fingerprint: FP,
    });
    expect(parseRecord(` V=AMP1 ;Endpoint = https://b.example/v1 ; extra=1; PUBKEY=${FP};`)).toEqual({
      endpoint: 'https://b.example/v1',
      fingerprint: FP,
    });
    expect(parseAmpTxt([['v=spf1 -all'], ['v=AMP1; endpoint=https://b.example/v1; ', `pubkey=${FP}`]])).toEqual({
      endpoint: 'https://b.example/v1',
      fingerprint: FP,
    });
  });

  it('refuses other versions, a missing endpoint, a missing or malformed pubkey, a malformed field', () => {
    expect(parseRecord(`v=AMP2; endpoint=https://b.example/v1; pubkey=${FP}`)).toMatch(/not an AMP1 record/);
    expect(parseRecord(`v=AMP1; pubkey=${FP}`)).toBe('no endpoint=');
    expect(parseRecord('v=AMP1; endpoint=https://b.example/v1; pubkey=abc')).toMatch(/no pubkey/);
    expect(parseRecord('v=AMP1; endpoint')).toMatch(/malformed field/);
    expect(parseAmpTxt([])).toBe('no TXT record');
  });
});
