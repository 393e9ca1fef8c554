// Where `amp-relay admin` sends a token it minted, and for which issuer. A minted token is valid on
// the server whose keys are in the data dir, so it goes only over a connection to the IP address
// AMP_HOST binds (at AMP_PORT), pinned rather than looked up by name (a name such as localhost may
// also resolve to an address another local user listens on), or to an https AMP_PUBLIC_URL /
// AID_ISSUER_ALIASES origin, whose certificate authenticates the name; and only when what answers
// there announces one of the configuration's issuers. The issuer is never taken from the server.

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
 * The one address a minted token is sent to, never a name lookup: the address AMP_HOST binds, with
 * 127.0.0.1 for the wildcards `0.0.0.0` and `::` (dual-stack); null for a host name.
 */
export function pinnedAddress(host: string): string | null {
  const h = canonical(host);
  if (h === '0.0.0.0' || h === '' || h === '::') return '127.0.0.1';
  return isIP(h) ? h : null;
}

const isLoopback = (h: string) => h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));

/** The server's URL from this machine: AMP_PUBLIC_URL, else AMP_HOST (loopback for a wildcard) and AMP_PORT. */
export function defaultUrl(cfg: Config): string {
  if (cfg.publicUrl) return cfg.publicUrl;
  if (cfg.port === 0) throw new CliError('the server port is 0 (any): give the server with --url', EXIT.USAGE);
  // With TLS on, the name the usual certificate is for (trust a self-signed one with NODE_EXTRA_CA_CERTS);
  // The connection still goes to 127.0.0.1 (mintTarget); the name is for the certificate check.
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

/** The addresses a host name resolves to here (canonical), [] when it does not. */
async function addressesOf(name: string): Promise<string[]> {
  try {
    return (await lookup(name, { all: true })).map((a) => canonical(a.address));
  } catch {
    return [];
  }
}

function ambiguous(cfg: Config, url: string, addrs: string[]): string {
  return (
    `--url ${url}: AMP_HOST=${cfg.host} resolves to ${addrs.join(', ')} and the server binds only one of them, ` +
    `so no minted token is sent (a listener on another could take it): set AMP_HOST to the IP address, ${FIX}`
  );
}

/** Why a minted token does not go to `url`, for the error. */
function refusal(cfg: Config, url: string, pin: string | null): string {
  const u = new URL(url);
  const why = !pin
    ? `AMP_HOST=${cfg.host} is a host name that does not resolve here to one address: give --url with the ` +
      `IP address it binds, at AMP_PORT ${cfg.port}`
    : u.protocol === 'http:' && [cfg.publicUrl, ...cfg.aidIssuerAliases].some((a) => originOf(a) === u.origin)
      ? 'a plain-http public URL gets no minted token (anything on the way could read it)'
      : `a minted token goes only to ${urlHost(pin)}:${cfg.port} (AMP_HOST, AMP_PORT), or to an https AMP_PUBLIC_URL`;
  return `--url ${url} is not one of this server's URLs for a minted token (${why}), so none is sent there: ${FIX}`;
}

/**
 * Where a token minted from the data dir may go for `url`: the IP address to connect to (the URL's
 * name is kept for the Host header and the TLS certificate check), or null for an https
 * AMP_PUBLIC_URL / AID_ISSUER_ALIASES origin (TLS authenticates the name). Throws CliError(USAGE).
 * A loopback URL (or the bound address) at AMP_PORT is pinned to the address AMP_HOST binds; for a
 * host name AMP_HOST, only when the name resolves to a single address (then pinned to it).
 */
export async function mintTarget(cfg: Config, url: string): Promise<string | null> {
  const u = new URL(url);
  const host = canonical(u.hostname.replace(/^\[|\]$/g, ''));
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const pin = pinnedAddress(cfg.host);
  if (cfg.port !== 0 && port === cfg.port) {
    if (pin && (isLoopback(host) || host === pin)) return pin;
    if (!pin) {
      // The server binds one of the name's addresses: pin only when there is no choice.
      const addrs = await addressesOf(cfg.host);
      if (addrs.length === 1 && (host === addrs[0] || host === canonical(cfg.host))) return addrs[0];
      if (addrs.length > 1) throw new CliError(ambiguous(cfg, url, addrs), EXIT.USAGE);
    }
  }
  const https = [cfg.publicUrl, ...cfg.aidIssuerAliases].filter((a) => a.startsWith('https:')).map(originOf);
  if (u.protocol === 'https:' && https.includes(u.origin)) return null;
  throw new CliError(refusal(cfg, url, pin), EXIT.USAGE);
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
export async function issuerFor(cfg: Config, url: string, tenant: string, pin: string | null): Promise<string> {
  const issuers = localIssuers(cfg, tenant);
  const a = await send('GET', `${url}/${encodeURIComponent(tenant)}/.well-known/openid-configuration`, { pin });
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
