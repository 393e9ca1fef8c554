// Allow lists of outbound targets: AMP_WEBHOOK_ALLOW_HOSTS (§18) and AMP_FEDERATION_ALLOW_HTTP
// (§19.1), comma-separated hostnames and CIDRs (`localhost,127.0.0.1/32`). A listed target may be
// reached over plain http and on addresses the SSRF rules refuse (development and tests only).
// A hostname entry exempts that exact name (no subdomains), whatever it resolves to; a CIDR entry
// exempts the addresses inside it, whatever name led there.

import { type Cidr, inCidr, ipBytes, mappedIpv4, parseCidr } from './ip.js';

export interface AllowList {
  /** Lowercase, without a trailing dot. */
  readonly hosts: ReadonlySet<string>;
  readonly cidrs: readonly Cidr[];
}

export const EMPTY_ALLOW_LIST: AllowList = { hosts: new Set(), cidrs: [] };

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Parse the entries (a comma-separated string or a list); empty entries are skipped. Problems
 * name the variable and the entry; the list holds the valid entries.
 */
export function parseAllowList(
  entries: string | readonly string[],
  name = 'AMP_WEBHOOK_ALLOW_HOSTS',
): { allow: AllowList; problems: string[] } {
  const list = typeof entries === 'string' ? entries.split(',') : entries;
  const hosts = new Set<string>();
  const cidrs: Cidr[] = [];
  const problems: string[] = [];
  for (const raw of list) {
    const e = raw.trim().toLowerCase();
    if (e === '') continue;
    const cidr = /^[0-9.]+(\/\d+)?$/.test(e) || e.includes(':') ? parseCidr(e.replace(/^\[(.*)\]/, '$1')) : undefined;
    if (cidr) cidrs.push(cidr);
    else if (isHostname(e.replace(/\.$/, ''))) hosts.add(e.replace(/\.$/, ''));
    else problems.push(`${name} entries are hostnames, IP addresses or CIDRs (got '${raw.trim()}')`);
  }
  return { allow: { hosts, cidrs }, problems };
}

/** A DNS name that a URL parser keeps as a name: its last label is no number (`1`, `0x7f`, `0177`). */
function isHostname(e: string): boolean {
  return HOSTNAME_RE.test(e) && !/(^|\.)(\d+|0x[0-9a-f]*)$/.test(e);
}

/** Is this hostname (lowercase, as in a parsed URL) listed by name? */
export function hostAllowed(allow: AllowList, hostname: string): boolean {
  return allow.hosts.has(hostname.toLowerCase().replace(/\.$/, ''));
}

/** Is this address inside a listed CIDR? An IPv4-mapped IPv6 address counts as its IPv4 address. */
export function addressAllowed(allow: AllowList, address: string): boolean {
  const bytes = ipBytes(address);
  if (bytes === undefined) return false;
  const v4 = mappedIpv4(bytes);
  return allow.cidrs.some((c) => inCidr(bytes, c) || (v4 !== undefined && inCidr(v4, c)));
}
