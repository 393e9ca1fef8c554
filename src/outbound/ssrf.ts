// The SSRF rules of spec §18 for a URL the provider will send a request to (a webhook, a
// federated provider): https only (http only for allow-listed targets), no credentials in the URL,
// the host written as a name or a canonical IP (a URL parser turns `0x7f.1`, `0177.0.0.1`,
// `2130706433`, `127.1` into 127.0.0.1 and `[2001:0DB8:0::1]` into [2001:db8::1], so the host is
// also read from the raw string), resolved
// once, every address checked, and the checked address returned so the caller connects to it and
// never looks the name up again (DNS rebinding).

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type AllowList, addressAllowed, hostAllowed } from './allow-list.js';
import { refusedRange } from './ranges.js';

export type RefusalReason =
  | 'invalid_url'
  | 'scheme'
  | 'credentials'
  | 'non_canonical_ip'
  | 'refused_address'
  | 'unresolvable'
  | 'https_to_http'
  | 'too_many_redirects';

/**
 * A target the rules refuse. At registration: 400 invalid_field; at delivery: like a 4xx (no
 * retry), except `unresolvable` (a DNS failure may pass: retry like a network error).
 */
export class UrlRefusedError extends Error {
  override readonly name = 'UrlRefusedError';
  constructor(
    readonly reason: RefusalReason,
    message: string,
    readonly url: string,
  ) {
    super(message);
  }
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Name → addresses; dns.lookup (getaddrinfo, /etc/hosts included) unless a test passes its own. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

export interface CheckedUrl {
  url: URL;
  /** The host to name in Host and SNI: lowercase, IPv6 without brackets. */
  hostname: string;
  port: number;
  /** The first of `addresses` (tried first; fetchChecked tries the others when it cannot connect). */
  address: string;
  family: 4 | 6;
  /** Every address the name resolved to, all checked. */
  addresses: readonly ResolvedAddress[];
  /** Exempted by the allow list (so http is allowed). */
  allowListed: boolean;
}

export interface CheckOptions {
  resolver?: Resolver;
}

/** Check `input` by the §18 rules; throws UrlRefusedError. */
export async function checkUrl(input: string, allow: AllowList, opts: CheckOptions = {}): Promise<CheckedUrl> {
  const url = parseTarget(input);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(hostname)
    ? [{ address: hostname, family: isIP(hostname) as 4 | 6 }]
    : await resolve(opts.resolver ?? systemResolver, hostname, input);
  const byName = hostAllowed(allow, hostname);
  for (const a of addresses) {
    const why = byName || addressAllowed(allow, a.address) ? undefined : refusedRange(a.address);
    if (why) {
      const via = a.address === hostname ? '' : `'${hostname}' resolves to ${a.address}, `;
      throw new UrlRefusedError('refused_address', `${via}address ${a.address} is in refused range ${why}`, input);
    }
  }
  const allowListed = byName || addresses.every((a) => addressAllowed(allow, a.address));
  if (url.protocol === 'http:' && !allowListed) {
    throw new UrlRefusedError('scheme', `http is allowed only for allow-listed hosts; use https`, input);
  }
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { url, hostname, port, address: addresses[0].address, family: addresses[0].family, addresses, allowListed };
}

async function resolve(resolver: Resolver, hostname: string, input: string): Promise<ResolvedAddress[]> {
  let addresses: ResolvedAddress[];
  try {
    addresses = await resolver(hostname);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UrlRefusedError('unresolvable', `'${hostname}' does not resolve (${code})`, input);
  }
  if (addresses.length === 0) throw new UrlRefusedError('unresolvable', `'${hostname}' has no address`, input);
  return addresses;
}

/** The URL, its scheme, credentials and IP spelling checked (no DNS yet). */
export function parseTarget(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UrlRefusedError('invalid_url', 'not an absolute URL', input);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UrlRefusedError('scheme', `scheme ${url.protocol} is not allowed; use https`, input);
  }
  if (url.username || url.password) {
    throw new UrlRefusedError('credentials', 'credentials in the URL are not allowed', input);
  }
  // An IP literal must be written exactly as the URL parser serializes it: IPv4 dotted decimal,
  // IPv6 in brackets, lower case, no leading zeros, the longest run of zero groups as `::`.
  const raw = rawHost(input);
  const v6 = url.hostname.startsWith('[');
  if ((v6 || isIP(url.hostname) === 4) && raw !== url.hostname) {
    const shown = raw === undefined ? 'the host' : `'${raw}'`;
    const address = v6 ? url.hostname.slice(1, -1) : url.hostname;
    throw new UrlRefusedError(
      'non_canonical_ip',
      `${shown} is a non-canonical spelling of ${address}; write the address as ${url.hostname}`,
      input,
    );
  }
  return url;
}

/**
 * The host exactly as written in an absolute http(s) URL: after the scheme and its slashes
 * (either kind, as URL parsers accept), before the path, query or fragment, without userinfo or
 * port. Tabs and newlines are dropped first, as URL parsers do.
 */
export function rawHost(input: string): string | undefined {
  const s = input.replace(/[\t\n\r]/g, '').trim();
  const m = /^[a-z][a-z0-9+.-]*:[/\\]*([^/\\?#]*)/i.exec(s);
  if (!m) return undefined;
  const authority = m[1].slice(m[1].lastIndexOf('@') + 1);
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority : authority.slice(0, colon);
}
