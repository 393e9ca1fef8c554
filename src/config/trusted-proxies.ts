// AMP_TRUSTED_PROXIES: the peers whose X-Forwarded-Proto / X-Forwarded-Host are believed. Anyone
// else could use them to make the server advertise URLs of their choosing (and a cache keep them).
// Empty (the default) trusts no one; loopback is not trusted implicitly.

import { BlockList, isIP } from 'node:net';

/** Problems with the entries (IPs or CIDRs), for the config error report. */
export function trustedProxyProblems(entries: readonly string[], name = 'AMP_TRUSTED_PROXIES'): string[] {
  const problems: string[] = [];
  for (const e of entries) if (!parseEntry(e)) problems.push(`${name} entries are IP addresses or CIDRs (got '${e}')`);
  return problems;
}

/** A predicate over peer addresses (as uWS writes them); entries must be valid (see above). */
export function trustedProxyMatcher(entries: readonly string[]): (ip: string) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  for (const e of entries) {
    const p = parseEntry(e);
    if (p) list.addSubnet(p.address, p.prefix, p.family);
  }
  return (ip) => {
    const a = unmapped(ip);
    const family = isIP(a);
    return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  };
}

interface Entry {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

function parseEntry(raw: string): Entry | undefined {
  const [address, prefixText, extra] = raw.trim().split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) return undefined;
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  if (prefix < 0 || prefix > bits) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
function unmapped(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1] : ip;
}
