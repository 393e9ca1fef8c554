// Federation configuration (spec §19.1): a bad AMP_FEDERATION_PINS file stops check-config and serve
// with the problem named; without pins, or in `closed` mode, federation is off (federation: false,
// deliveries refused); AMP_RATE_LIMITS=off lifts the federation limits; discovery by DNS TXT (the
// record given by the test's resolver, the provider a real server on loopback).

import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { isoTime, newMessageId } from '../../proto/index.js';
import { parseAllowList } from '../../src/outbound/allow-list.js';
import { parsePins } from '../../src/relay/federation/pins.js';
import { DiscoveryError, Providers } from '../../src/relay/federation/providers.js';
import { readmeBlock } from '../helpers/readme.js';
import { call, ROOT, spawnServer, startTestServer, type TestServer, tempDir } from '../helpers/server.js';

const run = promisify(execFile);
const dir = tempDir('amp-fedcfg-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const aKey = generateKeyPairSync('ed25519');
const aPem = aKey.publicKey.export({ format: 'pem', type: 'spki' }) as string;

function pinsFile(name: string, doc: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

const goodPins = () => pinsFile('good.json', { 'a.example': { endpoint: 'https://a.example/v1', public_key: aPem } });
const badPins = () => pinsFile('bad.json', { 'a.example': { endpoint: 'http://a.example/v1', public_key: aPem } });

/** POST federation/deliver as a.example (its key is the test's), the recipient `to`, unsigned message. */
function deliverUnsigned(t: TestServer, key: KeyObject, to: string, provider = 'a.example') {
  const id = newMessageId();
  const envelope = {
    ...{ version: 'amp/0.1', id, from: `alice@acme.${provider}`, to, subject: 's', priority: 'normal' },
    ...{ timestamp: isoTime(Date.now()), signature: '', thread_id: id },
  };
  const raw = JSON.stringify({ envelope, payload: { type: 'notification', message: 'x' }, sender_public_key: aPem });
  const ts = String(Math.floor(Date.now() / 1000));
  const headers = {
    'Content-Type': 'application/json',
    'X-AMP-Provider': provider,
    'X-AMP-Timestamp': ts,
    'X-AMP-Signature': sign(null, Buffer.from(`${ts}.${raw}`), key).toString('base64'),
  };
  return call('POST', `${t.url}/v1/federation/deliver`, { raw, headers });
}

describe('a bad pins file', () => {
  const cli = (pins: string) =>
    run(
      process.execPath,
      [join(ROOT, 'bin', 'amp-relay.js'), 'check-config', '--data-dir', join(dir, 'data'), '--federation-pins', pins],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: 20_000 },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('check-config exits 2 naming the setting, the file and the problem; a good file is valid', async () => {
    const bad = await cli(badPins());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--federation-pins');
    expect(bad.stderr).toContain("'a.example' endpoint 'http://a.example/v1' must be https");
    const good = await cli(goodPins());
    expect([good.code, good.stdout]).toEqual([0, 'configuration is valid\n']);
  });

  it("the README's pins file (block federation-pins, as written) is valid for check-config", async () => {
    const file = join(dir, 'readme-pins.json');
    writeFileSync(file, readmeBlock('federation-pins'));
    const r = await cli(file);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, 'configuration is valid\n', '']);
    const { pins, problems } = parsePins(readmeBlock('federation-pins'), 'README', parseAllowList('').allow);
    expect(problems).toEqual([]);
    expect(pins.map((p) => [p.domain, p.publicKeyPem === undefined])).toEqual([
      ['crabmail.ai', false],
      ['partner.example', true],
    ]);
  });

  it('serve refuses to start with it', async () => {
    const started = spawnServer(join(dir, 'serve-data'), ['--federation-pins', badPins()]);
    await expect(started).rejects.toThrow(/server exited \(2\) before listening: .*must be https/s);
  });
});

describe('federation off', () => {
  it.each([
    ['without pins', {}],
    ['in closed mode', { federationMode: 'closed' as const }],
  ])('%s: federation false, no capability, deliveries refused (403 provider_not_trusted)', async (_w, extra) => {
    const pins = 'federationMode' in extra ? { federationPins: goodPins() } : {};
    const t = await startTestServer({ providerDomain: 'b.example', ...pins, ...extra });
    try {
      const info = await call('GET', `${t.api}/info`);
      expect(info.body.federation).toBe(false);
      expect(info.body.capabilities).not.toContain('federation');
      expect((await call('GET', `${t.api}/health`)).body.federation).toBe(false);
      const r = await deliverUnsigned(t, aKey.privateKey, 'bob@acme.b.example');
      expect([r.status, r.body.accepted, r.body.error]).toEqual([403, false, 'provider_not_trusted']);
    } finally {
      await t.close();
    }
  });
});

describe('a pinned provider whose key cannot be had', () => {
  it('key unreachable: 503 (the sender retries); a key that is not the pinned fingerprint: 403', async () => {
    const other = await startTestServer({ providerDomain: 'a.example' }); // serves its own, other key
    const fp = (await call('GET', `${other.api}/info`)).body.fingerprint as string;
    expect(fp).not.toBe('');
    const pins = pinsFile('fp.json', {
      'a.example': { endpoint: other.api, public_key: `SHA256:${'C'.repeat(43)}=` },
      'down.example': { endpoint: 'http://127.0.0.1:1/v1', public_key: `SHA256:${'D'.repeat(43)}=` },
    });
    const t = await startTestServer({
      providerDomain: 'b.example',
      federationPins: pins,
      federationAllowHttp: ['127.0.0.1'],
    });
    try {
      const wrong = await deliverUnsigned(t, aKey.privateKey, 'bob@acme.b.example');
      expect([wrong.status, wrong.body.error, wrong.body.accepted]).toEqual([403, 'provider_not_trusted', false]);
      expect(wrong.body.message).toMatch(/not the expected/);
      const down = await deliverUnsigned(t, aKey.privateKey, 'bob@acme.b.example', 'down.example');
      expect([down.status, down.body.error, down.body.accepted]).toEqual([503, 'service_unavailable', false]);
      expect(down.headers.get('retry-after')).toBe('30');
    } finally {
      await t.close();
      await other.close();
    }
  });
});

describe('the per-provider limit', () => {
  it('100/min per provider, counted only once the provider signature verified', async () => {
    const t = await startTestServer({ providerDomain: 'b.example', federationPins: goodPins() });
    try {
      const post = (raw: string, key: KeyObject) => {
        const ts = String(Math.floor(Date.now() / 1000));
        const headers = {
          'X-AMP-Provider': 'a.example',
          'X-AMP-Timestamp': ts,
          'X-AMP-Signature': sign(null, Buffer.from(`${ts}.${raw}`), key).toString('base64'),
        };
        return call('POST', `${t.url}/v1/federation/deliver`, { raw, headers });
      };
      const forger = generateKeyPairSync('ed25519').privateKey;
      for (let i = 0; i < 5; i++) expect((await post(`{${i}`, forger)).status).toBe(403);
      // Until the first 429 (tokens refill at 100/min while the loop runs, so a few more may pass).
      let passed = 0;
      let last = await post('{0', aKey.privateKey);
      for (let i = 1; last.status === 400 && i < 150; i++) {
        passed++;
        last = await post(`{${i}`, aKey.privateKey); // signed, but not JSON: 400
      }
      expect(passed).toBeGreaterThanOrEqual(100);
      expect([last.status, last.body.error, last.body.accepted]).toEqual([429, 'rate_limited', false]);
      expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });
});

describe('AMP_RATE_LIMITS=off', () => {
  it('lifts the per-recipient federation limit (21 deliveries, none 429)', async () => {
    const t = await startTestServer({
      providerDomain: 'b.example',
      federationPins: goodPins(),
      federationAllowHttp: ['127.0.0.1'],
      rateLimits: 'off',
    });
    try {
      const reg = await call('POST', `${t.api}/register`, {
        json: { name: 'erin', tenant: 'acme', public_key: aPem, key_algorithm: 'Ed25519' },
      });
      expect(reg.status).toBe(201);
      const codes: number[] = [];
      for (let i = 0; i < 21; i++) codes.push((await deliverUnsigned(t, aKey.privateKey, reg.body.address)).status);
      expect(new Set(codes)).toEqual(new Set([403]));
    } finally {
      await t.close();
    }
  });
});

describe('discovery by DNS TXT', () => {
  it('takes endpoint and fingerprint from the record, the key from <endpoint>/info; a wrong fingerprint fails', async () => {
    const t = await startTestServer({ providerDomain: 'c.example' });
    try {
      const info = await call('GET', `${t.api}/info`);
      const fp = info.body.fingerprint as string;
      const allowHttp = parseAllowList('127.0.0.1').allow;
      const record = (f: string) => async (name: string) => {
        expect(name).toBe('_amp._tcp.c.example');
        return [[`v=AMP1; endpoint=${t.api}; pubkey=${f}`]];
      };
      const found = await new Providers({ pins: [], allowHttp, txt: record(fp) }).resolve('c.example');
      expect(found).toMatchObject({ domain: 'c.example', endpoint: t.api, via: 'dns' });
      expect(found.publicKeyPem.trim()).toBe(String(info.body.public_key).trim());
      const wrong = `SHA256:${'B'.repeat(43)}=`;
      const failed = new Providers({ pins: [], allowHttp, txt: record(wrong) }).resolve('c.example');
      await expect(failed).rejects.toThrow(DiscoveryError);
      await expect(failed).rejects.toThrow(/not the expected/);
      // Without the allow list, the loopback endpoint over http is refused by the SSRF rules.
      const refused = new Providers({ pins: [], allowHttp: parseAllowList('').allow, txt: record(fp) });
      await expect(refused.resolve('c.example')).rejects.toThrow(/must be https/);
    } finally {
      await t.close();
    }
  });
});
