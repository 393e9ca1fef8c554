// The pure parts of the config checks (issue 14): which hosts are listenable literals or names,
// how print-env quotes a value, the "did you mean" distance, and how problems name a setting.

import { describe, expect, it } from 'vitest';
import { redactSeed } from '../../src/config/cluster.js';
import { describeEnv, envFileValue } from '../../src/config/env-file.js';
import { hostProblem } from '../../src/config/host.js';
import { loadConfig } from '../../src/config/schema.js';
import { editDistance, unknownVariables } from '../../src/config/unknown-env.js';

describe('hostProblem', () => {
  it.each([
    '0.0.0.0',
    '127.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fe80::1',
    'localhost',
    'amp.example.com',
    'a-1.b2',
  ])('accepts %s', (host) => expect(hostProblem(host)).toBeUndefined());
  it.each([
    ['999.1.1.1', /not a valid IPv4 address/],
    ['256.0.0.1', /not a valid IPv4 address/],
    ['1.2.3', /not a valid IPv4 address/],
    ['1.2.3.4.5', /not a valid IPv4 address/],
    ['[::1]', /without brackets/],
    ['::g', /not a valid IPv6/],
    ['bad_name', /host name/],
    ['-lead.example', /host name/],
    ['amp..example', /host name/],
    ['example.123', /host name/],
    ['', /IP address or a host name/],
  ])('refuses %j', (host, why) => expect(hostProblem(host)).toMatch(why));
});

describe('envFileValue', () => {
  it.each(['', '0.0.0.0', '23000', './data', '*', 'a.example,b.example', 'https://amp.example.com/x', 'route=100/min'])(
    'writes %j bare',
    (v) => expect(envFileValue(v)).toBe(v),
  );
  it.each([
    ['two words', '"two words"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['$HOME `id` \\', '"\\$HOME \\`id\\` \\\\"'],
    ["it's", `"it's"`],
    ['~/x', '"~/x"'],
    ['#1', '"#1"'],
  ])('quotes %j', (v, want) => expect(envFileValue(v)).toBe(want));
});

describe('unknown variables', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('AMP_PROT', 'AMP_PORT')).toBe(1);
    expect(editDistance('AMP_PORT', 'AMP_PORT')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests the closest known name, or none when nothing is close', () => {
    const found = unknownVariables({
      AMP_PROT: '1',
      AMP_DATADIR: 'x',
      AID_JWT_ALGO: 'x',
      AMP_ZZZZZZZZ: 'x',
      AMP_PORT: '1',
      AMP_DIR: 'x',
      HOME: '/',
    });
    expect(found).toEqual([
      { name: 'AID_JWT_ALGO', suggestion: 'AID_JWT_ALG' },
      { name: 'AMP_DATADIR', suggestion: 'AMP_DATA_DIR' },
      { name: 'AMP_PROT', suggestion: 'AMP_PORT' },
      { name: 'AMP_ZZZZZZZZ', suggestion: undefined },
    ]);
  });
});

describe('problems name the setting as the user gave it', () => {
  const problems = (src: Parameters<typeof loadConfig>[0]) => {
    try {
      loadConfig(src);
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };

  it('a flag by its flag, a variable by its variable', () => {
    expect(problems({ flags: { port: 'abc' } })).toMatch(/--port: port must be a whole number/);
    expect(problems({ flags: { port: 'abc' } })).not.toMatch(/AMP_PORT/);
    expect(problems({ env: { AMP_PORT: 'abc' } })).toMatch(/AMP_PORT: port must be a whole number/);
    expect(problems({ flags: { providerDomain: 'x' } })).toMatch(/^ {2}--provider-domain must be a domain/m);
    expect(problems({ env: { AMP_PROVIDER_DOMAIN: 'x' } })).toMatch(/^ {2}AMP_PROVIDER_DOMAIN must be a domain/m);
    expect(problems({ flags: { host: '999.1.1.1' } })).toMatch(/--host is not a valid IPv4 address/);
    expect(problems({ env: { AMP_HOST: '999.1.1.1' } })).toMatch(/AMP_HOST is not a valid IPv4 address/);
    expect(problems({ overrides: { providerDomain: 'x' } })).toMatch(/providerDomain must be a domain/);
  });

  it('a setting not given by both its names', () => {
    const msg = problems({ flags: { registrationMode: 'key', wsSoftBuffer: '99999999' } });
    expect(msg).toMatch(/--registration-mode key needs --registration-keys \/ AMP_REGISTRATION_KEYS/);
    expect(msg).toMatch(/--ws-hard-buffer \/ AMP_WS_HARD_BUFFER must be larger than --ws-soft-buffer/);
    expect(problems({ env: { AMP_REGISTRATION_MODE: 'allowlist' } })).toMatch(
      /AMP_REGISTRATION_MODE=allowlist needs --registration-tenants \/ AMP_REGISTRATION_TENANTS/,
    );
    expect(problems({ flags: { trustedProxies: 'proxy.local' } })).toMatch(/--trusted-proxies entries are IP/);
  });

  it('the cluster settings (issue 18): nats needs seeds, a plain prefix, replicas 1-5', () => {
    expect(problems({ env: { AMP_STORE: 'nats' } })).toMatch(
      /AMP_STORE=nats needs --nats-url \/ AMP_NATS_URL \(comma-separated seeds/,
    );
    expect(problems({ flags: { store: 'nats' } })).toMatch(/--store nats needs --nats-url/);
    expect(problems({ env: { AMP_NATS_PREFIX: 'amp-1' } })).toMatch(/AMP_NATS_PREFIX may hold only A-Z, 0-9 and _/);
    expect(problems({ env: { AMP_NATS_REPLICAS: '7' } })).toMatch(/AMP_NATS_REPLICAS: natsReplicas must be between 1/);
    expect(problems({ env: { AMP_NATS_URL: 'http://x:1 y' } })).toMatch(/AMP_NATS_URL entries are nats:\/\/host:port/);
    const c = loadConfig({ env: { AMP_STORE: 'nats', AMP_NATS_URL: 'nats://127.0.0.1:4222, 10.0.0.2:4222' } });
    expect([c.store, c.natsUrl, c.natsReplicas, c.natsPrefix]).toEqual([
      'nats',
      ['nats://127.0.0.1:4222', '10.0.0.2:4222'],
      3,
      'AMP',
    ]);
    expect(loadConfig({}).store).toBe('lmdb');
  });

  it('print-env leaves secrets out', () => {
    const lines = describeEnv(loadConfig({ env: { AMP_NATS_TOKEN: 's3cret-token' } }), 'h');
    expect(lines.join('\n')).not.toContain('s3cret-token');
    expect(lines).toContain('AMP_NATS_TOKEN=');
  });

  it('print-env and the config errors leave out a token in a seed URL', () => {
    const c = loadConfig({ env: { AMP_NATS_URL: 'nats://s3cret-token@10.0.0.1:4222,10.0.0.2:4222' } });
    const text = describeEnv(c, 'h').join('\n');
    expect(text).not.toContain('s3cret-token');
    expect(text).toContain('AMP_NATS_URL=nats://***@10.0.0.1:4222,10.0.0.2:4222');
    expect(text).toContain('# (a credential in it is not printed: fill it in)');
    expect(redactSeed('tls://tok@h:1')).toBe('tls://***@h:1');
    expect(redactSeed('h:1')).toBe('h:1');
    expect(() => loadConfig({ env: { AMP_STORE: 'nats', AMP_NATS_URL: 'nats://s3cret@bad host' } })).toThrow(
      /nats:\/\/\*\*\*@bad host/,
    );
  });

  it('a variable a flag overrides is not used, so not refused', () => {
    expect(loadConfig({ env: { AMP_PORT: 'abc' }, flags: { port: '8080' } }).port).toBe(8080);
  });
});
