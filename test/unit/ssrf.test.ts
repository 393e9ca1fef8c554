// The SSRF rules of spec §18 without the network (src/outbound/): every refused range at its
// edges and just outside (the oracle is this file's own integer arithmetic over the spec's list),
// IPv4-mapped / compatible / NAT64 forms, canonical and non-canonical IP spellings in URLs, the
// allow list (hostnames and CIDRs), and "every resolved address is checked" through a resolver
// that answers as a DNS server could (IP literals never reach it).
import { describe, expect, it } from 'vitest';
import { parseAllowList, EMPTY_ALLOW_LIST, type AllowList } from '../../src/outbound/allow-list.js';
import { REFUSED_RANGES, refusedRange } from '../../src/outbound/ranges.js';
import { checkUrl, rawHost, type ResolvedAddress, UrlRefusedError } from '../../src/outbound/ssrf.js';

/** The list of spec §18, as written there. */
const SPEC_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const SPEC_V6 = ['::/128', '::1/128', 'fc00::/7', 'fe80::/10', 'ff00::/8'];

const v4ToInt = (s: string) => s.split('.').reduce((n, p) => n * 256 + Number(p), 0);
const intToV4 = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
function v4Span(cidr: string): [number, number] {
  const [a, p] = cidr.split('/');
  const start = v4ToInt(a);
  return [start, start + 2 ** (32 - Number(p)) - 1];
}
const inSpecV4 = (n: number) => SPEC_V4.some((c) => n >= v4Span(c)[0] && n <= v4Span(c)[1]);

function v6ToBig(s: string): bigint {
  const [l, r] = s.split('::');
  const left = l ? l.split(':') : [];
  const right = r !== undefined && r ? r.split(':') : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((n, g) => (n << 16n) + BigInt(Number.parseInt(g, 16)), 0n);
}
const bigToV6 = (n: bigint) =>
  Array.from({ length: 8 }, (_, i) => ((n >> BigInt(16 * (7 - i))) & 0xffffn).toString(16)).join(':');
function v6Span(cidr: string): [bigint, bigint] {
  const [a, p] = cidr.split('/');
  const start = v6ToBig(a);
  return [start, start + (1n << BigInt(128 - Number(p))) - 1n];
}

describe('refused ranges (spec §18)', () => {
  it('are exactly the spec list plus the IPv4-compatible ::/96', () => {
    expect([...REFUSED_RANGES].sort()).toEqual([...SPEC_V4, ...SPEC_V6, '::/96'].sort());
  });

  it.each(SPEC_V4)('%s: refused from first to last address, neighbours judged on their own', (cidr) => {
    const [first, last] = v4Span(cidr);
    for (const n of [first, first + 1, Math.floor((first + last) / 2), last]) {
      expect(refusedRange(intToV4(n)), intToV4(n)).toContain(cidr);
      expect(refusedRange(`::ffff:${intToV4(n)}`), `mapped ${intToV4(n)}`).toContain(cidr);
      const hex = `::ffff:${(Math.floor(n / 65536) % 65536).toString(16)}:${(n % 65536).toString(16)}`;
      expect(refusedRange(hex), hex).toContain(cidr);
      expect(refusedRange(`64:ff9b::${intToV4(n)}`), `NAT64 ${intToV4(n)}`).toContain(cidr);
      // ::0.0.0.0 and ::0.0.0.1 are :: and ::1
      expect(refusedRange(`::${intToV4(n)}`), `compatible ${intToV4(n)}`).toMatch(/^::(1?\/128|\/96) /);
    }
    for (const n of [first - 1, last + 1].filter((x) => x >= 0 && x < 2 ** 32)) {
      const expected = inSpecV4(n) ? expect.any(String) : undefined;
      expect(refusedRange(intToV4(n)), intToV4(n)).toEqual(expected);
      expect(refusedRange(`::ffff:${intToV4(n)}`), `mapped ${intToV4(n)}`).toEqual(expected);
    }
  });

  it.each(SPEC_V6)('%s: refused at its edges, with the neighbours outside allowed', (cidr) => {
    const [first, last] = v6Span(cidr);
    for (const n of [first, last]) expect(refusedRange(bigToV6(n)), bigToV6(n)).toContain(cidr);
    for (const n of [first - 1n, last + 1n].filter((x) => x >= 0n && x < 1n << 128n && x >= 1n << 32n)) {
      expect(refusedRange(bigToV6(n)), bigToV6(n)).toBeUndefined();
    }
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '100.63.255.255',
    '172.32.0.0',
    '192.0.2.1',
    '223.255.255.255',
    '2001:4860:4860::8888',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
    'fec0::1',
  ])('%s is allowed', (address) => {
    expect(refusedRange(address)).toBeUndefined();
  });

  it.each([
    ['FE80::1', 'fe80::/10'],
    ['fe80::1%eth0', 'fe80::/10'],
    ['0:0:0:0:0:0:0:1', '::1/128'],
    ['0000::0001', '::1/128'],
    ['::FFFF:7F00:1', '127.0.0.0/8'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', '169.254.0.0/16'],
    ['::ffff:0.0.0.0', '0.0.0.0/8'],
  ])('%s (another spelling) is refused as %s', (address, range) => {
    expect(refusedRange(address)).toContain(range);
  });
});

/** A resolver that answers from a table, as a DNS server could, and counts its lookups. */
function tableResolver(table: Record<string, string[]>) {
  const calls: string[] = [];
  const resolver = async (name: string): Promise<ResolvedAddress[]> => {
    calls.push(name);
    const list = table[name];
    if (!list) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolver, calls };
}

async function refusal(url: string, allow: AllowList = EMPTY_ALLOW_LIST, table: Record<string, string[]> = {}) {
  const { resolver } = tableResolver(table);
  try {
    await checkUrl(url, allow, { resolver });
  } catch (e) {
    expect(e).toBeInstanceOf(UrlRefusedError);
    return e as UrlRefusedError;
  }
  throw new Error(`${url} was not refused`);
}

describe('IP spellings in the URL host', () => {
  it.each([
    ['https://0x7f.1/', '127.0.0.1'],
    ['https://0x7f.0.0.1/', '127.0.0.1'],
    ['https://0X7F000001/', '127.0.0.1'],
    ['https://0177.0.0.1/', '127.0.0.1'],
    ['https://0177.1/', '127.0.0.1'],
    ['https://2130706433/', '127.0.0.1'],
    ['https://127.1/', '127.0.0.1'],
    ['https://127.0.1/', '127.0.0.1'],
    ['https://127.0.0.1./', '127.0.0.1'],
    ['https://%31%32%37.0.0.1/', '127.0.0.1'],
    ['https://\uff11\uff12\uff17.0.0.1/', '127.0.0.1'],
    ['https://0xa9.0xfe.0xa9.0xfe/latest/meta-data', '169.254.169.254'],
    ['https://0x08080808/', '8.8.8.8'],
    ['https://134744072/', '8.8.8.8'],
    ['https://8.8.2056/', '8.8.8.8'],
    ['https://010.010.010.010/', '8.8.8.8'],
    ['https:\\\\0x08080808/', '8.8.8.8'],
    ['https:/0x08080808/', '8.8.8.8'],
    ['HTTPS://0x08080808:443/x?y#z', '8.8.8.8'],
    ['https://[2001:0db8:0:0::0001]/', '2001:db8::1'],
    ['https://[2001:DB8::1]/', '2001:db8::1'],
    ['https://[2001:4860:4860:0:0:0:0:8888]/', '2001:4860:4860::8888'],
    ['https://[::ffff:8.8.8.8]/', '::ffff:808:808'],
    ['https://[::ffff:127.0.0.1]/', '::ffff:7f00:1'],
    ['https://[0:0:0:0:0:0:0:1]:8443/', '::1'],
    ['https://[::127.0.0.1]/', '::7f00:1'],
  ])('%s (%s) is refused as non-canonical', async (url, address) => {
    const e = await refusal(url);
    expect(e.reason).toBe('non_canonical_ip');
    expect(e.message).toContain(`non-canonical spelling of ${address}`);
  });

  it.each([
    'https://8.8.8.8/',
    'https://8.8.8.8:8443/hook?x=1',
    'HTTPS://8.8.8.8/',
    'https://[2001:4860:4860::8888]/',
    'https://[::ffff:808:808]/',
  ])('%s (canonical, public) passes', async (url) => {
    const { resolver, calls } = tableResolver({});
    const r = await checkUrl(url, EMPTY_ALLOW_LIST, { resolver });
    expect(calls).toEqual([]); // an IP literal is never looked up
    expect(r.allowListed).toBe(false);
    expect(r.addresses).toHaveLength(1);
  });

  it.each([
    ['https://127.0.0.1/', '127.0.0.0/8'],
    ['https://169.254.169.254/latest/meta-data/', '169.254.0.0/16'],
    ['https://[::1]/', '::1/128'],
    ['https://[::ffff:7f00:1]/', '127.0.0.0/8'],
    ['https://[fd00::1]:8443/', 'fc00::/7'],
    ['https://[64:ff9b::a9fe:a9fe]/', '169.254.0.0/16'],
    ['https://[::7f00:1]/', '::/96'],
    ['https://0.0.0.0/', '0.0.0.0/8'],
  ])('%s (canonical, refused address) is refused by its range', async (url, range) => {
    const e = await refusal(url);
    expect(e.reason).toBe('refused_address');
    expect(e.message).toContain(range);
  });

  it.each([
    ['https://host.example:443/p', 'host.example'],
    ['https://user:pw@0x7f.1:8443/p', '0x7f.1'],
    ['https://a@b@0x7f.1/p', '0x7f.1'],
    ['https://[::1]:8443/', '[::1]'],
    ['https:\\\\0x7f.1\\p', '0x7f.1'],
    [' https://0x7f.1/ ', '0x7f.1'],
    ['https://0x7f\t.1/', '0x7f.1'],
    ['https://8.8.8.8?x', '8.8.8.8'],
    ['https://8.8.8.8#x', '8.8.8.8'],
  ])('rawHost(%j) = %s', (url, host) => {
    expect(rawHost(url)).toBe(host);
  });
});

describe('scheme, credentials, malformed URLs', () => {
  it.each([
    ['not a url', 'invalid_url'],
    ['/relative/path', 'invalid_url'],
    ['https://08.8.8.8/', 'invalid_url'],
    ['https://256.0.0.1/', 'invalid_url'],
    ['ftp://8.8.8.8/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['gopher://8.8.8.8/', 'scheme'],
    ['http://8.8.8.8/', 'scheme'],
    ['https://user:pw@8.8.8.8/', 'credentials'],
    ['https://user@8.8.8.8/', 'credentials'],
    ['https://nowhere.invalid/', 'unresolvable'],
  ])('%s → %s', async (url, reason) => {
    expect((await refusal(url)).reason).toBe(reason);
  });
});

describe('resolved names: every address is checked, the first is the one to connect to', () => {
  it('a name with one refused address among public ones is refused', async () => {
    const table = { 'mixed.example': ['8.8.8.8', '2001:4860:4860::8888', '10.0.0.7'] };
    const e = await refusal('https://mixed.example/hook', EMPTY_ALLOW_LIST, table);
    expect(e.reason).toBe('refused_address');
    expect(e.message).toBe(
      "'mixed.example' resolves to 10.0.0.7, address 10.0.0.7 is in refused range 10.0.0.0/8 (private)",
    );
  });

  it('a name resolving to a mapped private address is refused', async () => {
    const e = await refusal('https://m.example/', EMPTY_ALLOW_LIST, { 'm.example': ['::ffff:192.168.1.1'] });
    expect(e.message).toContain('192.168.0.0/16');
  });

  it('a name with public addresses only passes, looked up once; the first address is returned', async () => {
    const { resolver, calls } = tableResolver({ 'pub.example': ['2001:4860:4860::8888', '8.8.8.8'] });
    const r = await checkUrl('https://PUB.example:8443/h?q', EMPTY_ALLOW_LIST, { resolver });
    expect(calls).toEqual(['pub.example']);
    expect(r).toMatchObject({ hostname: 'pub.example', port: 8443, address: '2001:4860:4860::8888', family: 6 });
    expect(r.addresses.map((a) => a.address)).toEqual(['2001:4860:4860::8888', '8.8.8.8']);
  });

  it('a name without addresses is unresolvable', async () => {
    expect((await refusal('https://empty.example/', EMPTY_ALLOW_LIST, { 'empty.example': [] })).reason).toBe(
      'unresolvable',
    );
  });

  it('localhost (the system resolver, /etc/hosts) is refused without the allow list', async () => {
    const e = await checkUrl('https://localhost/', EMPTY_ALLOW_LIST).catch((x) => x);
    expect(e).toBeInstanceOf(UrlRefusedError);
    expect(e.reason).toBe('refused_address');
    expect(e.message).toMatch(/^'localhost' resolves to (127\.0\.0\.1|::1), /);
  });
});

describe('allow list', () => {
  it('parses hostnames, addresses and CIDRs; reports every bad entry by name', () => {
    const { allow, problems } = parseAllowList(
      ' localhost, Hooks.Example.,127.0.0.1/32,::1,[fd00::]/8 ,10.1.2.3/8,,0x7f.1,127.1,10.0.0.0/33,1.2.3.4/08,a_b,http://x,*.x.com',
      'AMP_FEDERATION_ALLOW_HTTP',
    );
    expect([...allow.hosts]).toEqual(['localhost', 'hooks.example']);
    expect(allow.cidrs.map((c) => `${[...c.bytes].join('.')}/${c.prefix}`)).toEqual([
      '127.0.0.1/32',
      '0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1/128',
      '253.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0/8',
      '10.0.0.0/8',
    ]);
    expect(problems).toEqual(
      ['0x7f.1', '127.1', '10.0.0.0/33', '1.2.3.4/08', 'a_b', 'http://x', '*.x.com'].map(
        (e) => `AMP_FEDERATION_ALLOW_HTTP entries are hostnames, IP addresses or CIDRs (got '${e}')`,
      ),
    );
  });

  it('takes a list as well as a comma-separated string; empty means nothing is allowed', () => {
    expect([...parseAllowList(['a.example', 'b.example']).allow.hosts]).toEqual(['a.example', 'b.example']);
    const empty = parseAllowList('');
    expect(empty.problems).toEqual([]);
    expect(empty.allow.hosts.size + empty.allow.cidrs.length).toBe(0);
  });

  const table = { 'dev.test': ['127.0.0.1', '::1'], 'lan.test': ['10.0.0.5'] };

  it('a listed hostname is exempt (any address, http allowed); another name is not', async () => {
    const { allow } = parseAllowList('dev.test');
    const { resolver } = tableResolver(table);
    const r = await checkUrl('http://dev.test:8080/', allow, { resolver });
    expect(r).toMatchObject({ allowListed: true, address: '127.0.0.1', port: 8080 });
    expect((await refusal('http://lan.test/', allow, table)).reason).toBe('refused_address');
    expect((await refusal('https://sub.dev.test/', allow, { 'sub.dev.test': ['127.0.0.1'] })).reason).toBe(
      'refused_address',
    );
  });

  it('a CIDR exempts the addresses inside it only; http only when all addresses are inside', async () => {
    const { allow } = parseAllowList('127.0.0.0/8,10.0.0.0/24');
    const { resolver } = tableResolver(table);
    expect(await checkUrl('http://127.0.0.1:9/', allow)).toMatchObject({ allowListed: true });
    expect(await checkUrl('http://lan.test/', allow, { resolver })).toMatchObject({ allowListed: true });
    const e = await refusal('https://dev.test/', allow, table); // ::1 is outside 127.0.0.0/8
    expect(e.message).toContain('::1/128');
    const both = parseAllowList('127.0.0.0/8,::1').allow;
    expect(await checkUrl('http://dev.test/', both, { resolver })).toMatchObject({ allowListed: true });
    expect((await refusal('http://8.8.8.8/', allow)).reason).toBe('scheme');
    expect((await refusal('https://10.0.1.1/', allow)).reason).toBe('refused_address');
  });

  it('an IPv4 CIDR covers the IPv4-mapped form of its addresses', async () => {
    const { allow } = parseAllowList('127.0.0.0/8');
    expect(await checkUrl('http://[::ffff:7f00:1]:9/', allow)).toMatchObject({ allowListed: true });
    const { resolver } = tableResolver({ 'm.test': ['::ffff:127.0.0.2'] });
    expect(await checkUrl('http://m.test/', allow, { resolver })).toMatchObject({ allowListed: true });
    expect((await refusal('http://[::ffff:a00:1]/', allow)).reason).toBe('refused_address');
  });

  it('does not excuse a non-canonical spelling of a listed address', async () => {
    const { allow } = parseAllowList('127.0.0.0/8');
    expect((await refusal('http://127.1/', allow)).reason).toBe('non_canonical_ip');
  });
});
