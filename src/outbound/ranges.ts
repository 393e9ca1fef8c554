// The address ranges an outbound request (webhook, federation) may not reach (spec §18 "SSRF
// rules"): this host, private networks, link-local (cloud metadata at 169.254.169.254), multicast
// and reserved space, in IPv4 and IPv6. An IPv4 address written as IPv6 is judged as the IPv4
// address it reaches:
// - IPv4-mapped `::ffff:a.b.c.d` (the kernel connects to a.b.c.d) by the IPv4 rules;
// - IPv4-compatible `::a.b.c.d` (deprecated by RFC 4291, never a real destination): all of `::/96`;
// - NAT64 `64:ff9b::a.b.c.d` (RFC 6052; a NAT64 gateway connects to a.b.c.d) by the IPv4 rules.

import { type Cidr, inCidr, ipBytes, mappedIpv4, parseCidr } from './ip.js';

interface Rule {
  cidr: Cidr;
  why: string;
}

function rules(list: Array<[string, string]>): Rule[] {
  return list.map(([text, why]) => {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`bad built-in range ${text}`);
    return { cidr, why };
  });
}

const REFUSED_V4 = rules([
  ['0.0.0.0/8', '"this network"'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local, cloud metadata'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved, broadcast'],
]);

const REFUSED_V6 = rules([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'IPv4-compatible, deprecated'],
  ['fc00::/7', 'unique local'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
]);

const NAT64 = parseCidr('64:ff9b::/96')!;

/** Every refused range as written, for documentation and tests. */
export const REFUSED_RANGES: readonly string[] = [...REFUSED_V4, ...REFUSED_V6].map((r) => r.cidr.text);

/** Why this address may not be reached (`127.0.0.0/8 (loopback)`), or undefined when it may. */
export function refusedRange(address: string | Uint8Array): string | undefined {
  const bytes = typeof address === 'string' ? ipBytes(address) : address;
  if (!bytes) return 'not an IP address';
  if (bytes.length === 4) return firstMatch(bytes, REFUSED_V4);
  const embedded = mappedIpv4(bytes) ?? (inCidr(bytes, NAT64) ? bytes.slice(12) : undefined);
  if (embedded) {
    const v4 = firstMatch(embedded, REFUSED_V4);
    return v4 && `${v4} as ${mappedIpv4(bytes) ? 'IPv4-mapped' : 'NAT64'} IPv6`;
  }
  return firstMatch(bytes, REFUSED_V6);
}

function firstMatch(bytes: Uint8Array, list: Rule[]): string | undefined {
  const hit = list.find((r) => inCidr(bytes, r.cidr));
  return hit && `${hit.cidr.text} (${hit.why})`;
}
