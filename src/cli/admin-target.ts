// Where `amp-relay admin` sends a token it minted, and for which issuer. A minted token is valid on
// the server whose keys are in the data dir, so it goes only to that server's URLs as the local
// configuration names them (AMP_PUBLIC_URL, AID_ISSUER_ALIASES, and at AMP_PORT the loopback
// addresses AMP_HOST really binds), and only when what answers there announces one of the configuration's issuers.
// The issuer is never taken from the server: a hostile or mistyped --url gets nothing.

import { hostname, userInfo } from 'node:os';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { tlsEnabled } from '../config/tls.js';
import type { Config } from '../config/schema.js';
import { issuerOf } from '../identity/admin-tokens.js';
import { CliError, EXIT, send, serverMessage } from './admin-http.js';
import { issuerBase } from './admin-token.js';

const urlHost = (h: string) => (isIP(h) === 6 ? `[${h}]` : h);

/** An IP literal as a URL's origin spells it (`::0:1` → `::1`), or the name as given. */
function canonical(h: string): string {
  if (!isIP(h)) return h;
  return new URL(`http://${urlHost(h)}`).hostname.replace(/^\[|\]$/g, '');
}

/**
 * The loopback (or, for a specific AMP_HOST, that) addresses a server bound to `host` answers on.
 * The wildcard `::` is dual-stack (it answers on 127.0.0.1 too); `0.0.0.0` is IPv4 only. Anything
 * else on this machine could listen on the others at the same port and collect a minted token.
 */
export function boundAddresses(host: string): string[] {
  const h = canonical(host);
  if (h === '0.0.0.0' || h === '') return ['127.0.0.1'];
  if (h === '::') return ['127.0.0.1', '::1'];
  return isIP(h) ? [h] : [];
}

/** The server's URL from this machine: AMP_PUBLIC_URL, else AMP_HOST (loopback for a wildcard) and AMP_PORT. */
export function defaultUrl(cfg: Config): string {
  if (cfg.publicUrl) return cfg.publicUrl;
  if (cfg.port === 0) throw new CliError('the server port is 0 (any): give the server with --url', EXIT.USAGE);
  // With TLS on, the name the usual certificate is for (trust a self-signed one with NODE_EXTRA_CA_CERTS);
  // issuerFor accepts it only when `localhost` resolves to addresses the server listens on.
  const tls = tlsEnabled(cfg);
  const wildcard = ['0.0.0.0', '::', ''].includes(canonical(cfg.host));
  const host = wildcard ? (tls ? 'localhost' : '127.0.0.1') : urlHost(cfg.host);
  return `${tls ? 'https' : 'http'}://${host}:${cfg.port}`;
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** What `localhost` resolves to here (all addresses, canonical), [] when it does not. */
async function localhostAddresses(): Promise<string[]> {
  try {
    return (await lookup('localhost', { all: true })).map((a) => canonical(a.address));
  } catch {
    return [];
  }
}

/**
 * The origins the configuration says are this server's: AMP_PUBLIC_URL and AID_ISSUER_ALIASES as
 * configured, the addresses AMP_HOST binds (or its name), and `localhost` only when every address it
 * resolves to is one of those (the connection goes to whichever comes first).
 */
async function serverOrigins(cfg: Config): Promise<Set<string>> {
  const urls = [cfg.publicUrl, ...cfg.aidIssuerAliases];
  if (cfg.port !== 0) {
    const scheme = tlsEnabled(cfg) ? 'https' : 'http';
    const bound = boundAddresses(cfg.host);
    const hosts = isIP(canonical(cfg.host)) ? bound.map(urlHost) : [cfg.host];
    const local = bound.length > 0 ? await localhostAddresses() : [];
    if (local.length > 0 && local.every((a) => bound.includes(a))) hosts.push('localhost');
    for (const h of hosts) urls.push(`${scheme}://${h}:${cfg.port}`);
  }
  return new Set(urls.map((u) => originOf(u)).filter((o): o is string => o !== null));
}

/** Why `url` is not trusted, for the error: `localhost` resolving to an address the server does not bind. */
async function whyNot(cfg: Config, url: string): Promise<string> {
  if (!originOf(url) || new URL(url).hostname !== 'localhost' || cfg.port === 0) return '';
  const local = await localhostAddresses();
  const bound = boundAddresses(cfg.host);
  return (
    ` (localhost resolves to ${local.join(', ') || 'nothing'} here, the server listens on ` +
    `${bound.join(', ') || cfg.host} by AMP_HOST=${cfg.host}: use --url with one of those addresses)`
  );
}

/** The issuers this configuration's server accepts admin tokens of (tenant's issuer first). */
export function localIssuers(cfg: Config, tenant: string): string[] {
  return [issuerOf(issuerBase(cfg), tenant), ...cfg.aidIssuerAliases.map((a) => issuerOf(a, tenant))];
}

const FIX =
  "set the server's --public-url / AMP_PUBLIC_URL, --port / AMP_PORT and --host / AMP_HOST as it runs " +
  'with (or AID_ISSUER_ALIASES), or give a token with --token-file or AMP_ADMIN_TOKEN';

/**
 * The issuer to mint for, after checking that `url` is this server's: by the configuration, and by
 * the issuer the server announces for the tenant (a tenant without agents has no discovery document
 * yet: then the configuration's issuer). Throws CliError(USAGE) before any token leaves.
 */
export async function issuerFor(cfg: Config, url: string, tenant: string): Promise<string> {
  const issuers = localIssuers(cfg, tenant);
  const origin = originOf(url);
  if (!origin || !(await serverOrigins(cfg)).has(origin))
    throw new CliError(
      `--url ${url} is not one of this server's URLs by its configuration${await whyNot(cfg, url)}, so no ` +
        `token minted from its data dir is sent there: ${FIX}`,
      EXIT.USAGE,
    );
  const a = await send('GET', `${url}/${encodeURIComponent(tenant)}/.well-known/openid-configuration`);
  if (a.status === 404) return issuers[0];
  const issuer = (a.body as { issuer?: unknown } | null)?.issuer;
  if (a.status !== 200 || typeof issuer !== 'string')
    throw new CliError(`${url} does not look like an amp-relay server (${serverMessage(a)})`, EXIT.FAILED);
  if (!issuers.includes(issuer))
    throw new CliError(
      `the server at ${url} announces issuer ${issuer}, this configuration gives ${issuers.join(', ')}; ` +
        `no token was sent: ${FIX}`,
      EXIT.USAGE,
    );
  return issuer;
}

/** Who a minted token names: user@host, or uid<N>@host for a uid without a passwd entry (docker --user). */
export function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `uid${process.getuid?.() ?? 'unknown'}@${hostname()}`;
  }
}
