// The admin CLI's HTTP side: one request at a time to the running server, its errors turned into
// messages and exit codes a script can branch on. AMP errors are `{error, message}`, AID errors
// `{error, error_description}`: both are shown as the server wrote them. A request carrying a
// minted token is pinned: its connection goes to one IP address (admin-target.ts), the URL's name
// kept for the Host header and the TLS certificate check.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';

/** Exit codes of `amp-relay admin` (documented in its --help and the README). */
export const EXIT = {
  OK: 0,
  /** The server refused or failed (a 4xx other than below, a 5xx). */
  FAILED: 1,
  /** Bad command line or configuration, or no signing keys in the data dir. */
  USAGE: 2,
  /** No answer from the server (not running, wrong --url, timeout), or its TLS certificate is not trusted. */
  UNREACHABLE: 3,
  /** 401 or 403: the token was refused, or lacks a scope. */
  UNAUTHORIZED: 4,
  /** 404: unknown agent, registration or tenant. */
  NOT_FOUND: 5,
} as const;

/** How long one request may take before the server counts as unreachable. */
const REQUEST_TIMEOUT_MS = 15_000;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** The server's own words for an error answer. */
export function serverMessage(a: HttpAnswer): string {
  const b = (a.body ?? {}) as Record<string, unknown>;
  const code = typeof b.error === 'string' ? b.error : `HTTP ${a.status}`;
  const text = [b.message, b.error_description].find((m) => typeof m === 'string');
  return text ? `${code}: ${text}` : code;
}

function exitFor(status: number): number {
  if (status === 401 || status === 403) return EXIT.UNAUTHORIZED;
  if (status === 404) return EXIT.NOT_FOUND;
  return EXIT.FAILED;
}

/** Certificate errors (a cause's code) that mean "not trusted here", not "not running". */
const UNTRUSTED_CERT = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A failed fetch as the operator's error: an untrusted certificate, or no answer. */
function unreachable(url: string, e: unknown): CliError {
  const err = e as { cause?: { code?: unknown; message?: string }; code?: unknown; message?: string };
  // fetch wraps the socket's error in `cause`; node:http gives it as is.
  const c = typeof err.code === 'string' ? err : (err.cause ?? err);
  const cause = { code: typeof c.code === 'string' ? c.code : undefined, message: c.message };
  const why = cause.code ?? cause.message ?? String(e);
  const origin = new URL(url).origin;
  if (cause?.code && UNTRUSTED_CERT.has(cause.code)) {
    const fix =
      cause.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? `it is not for ${new URL(url).hostname}: use --url with a name the certificate has`
        : cause.code.startsWith('CERT_')
          ? 'renew it'
          : 'trust it: NODE_EXTRA_CA_CERTS=cert.pem npx amp-relay admin ... (its certificate or CA file)';
    return new CliError(`the server's certificate is not trusted at ${origin} (${why}): ${fix}`, EXIT.UNREACHABLE);
  }
  return new CliError(
    `cannot reach the server at ${origin} (${why}): is it running, is --url right?`,
    EXIT.UNREACHABLE,
  );
}

/** A 3xx answer as the operator's error: the admin API never redirects, so --url is not the server's API. */
function redirected(url: string, status: number, location: string | null): CliError {
  let to = ' (no Location)';
  if (location)
    try {
      to = ` to ${new URL(location, url).href}`;
    } catch {
      to = ` to '${location}'`;
    }
  return new CliError(
    `the server at ${new URL(url).origin} answered ${status}, a redirect${to}; not followed: ` +
      'give --url the server itself (its scheme, host and port)',
    EXIT.FAILED,
  );
}

interface RawAnswer {
  status: number;
  location: string | null;
  text: string;
}

/** A request over a connection to `pin` (an IP address), with the URL's name as Host and for TLS. */
function pinnedRequest(method: string, url: string, pin: string, headers: Record<string, string>, body?: string) {
  const u = new URL(url);
  const name = u.hostname.replace(/^\[|\]$/g, '');
  const tls = u.protocol === 'https:';
  const identity = (_: string, cert: PeerCertificate) => checkServerIdentity(name, cert);
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      {
        method,
        host: pin,
        port: u.port || (tls ? 443 : 80),
        path: `${u.pathname}${u.search}`,
        headers: { ...headers, Host: u.host },
        agent: false,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        ...(tls ? { servername: isIP(name) ? '' : name, checkServerIdentity: identity } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location ?? null,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A request by fetch (the URL's name looked up as usual), redirects not followed. */
async function fetchRequest(method: string, url: string, headers: Record<string, string>, body?: string) {
  const res = await fetch(url, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    // Never followed: the answer (and a POST body, a same-origin token) would go to another URL.
    redirect: 'manual',
  });
  return { status: res.status, location: res.headers.get('location'), text: await res.text() };
}

/**
 * One HTTP request, over a connection to `pin` when given (see pinnedRequest); no answer is
 * CliError(UNREACHABLE), a redirect CliError(FAILED), any other answer as is.
 */
export async function send(
  method: string,
  url: string,
  opts: { token?: string; json?: unknown; pin?: string | null } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['Content-Type'] = 'application/json';
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  let res: RawAnswer;
  try {
    res = opts.pin
      ? await pinnedRequest(method, url, opts.pin, headers, body)
      : await fetchRequest(method, url, headers, body);
  } catch (e) {
    throw unreachable(url, e);
  }
  if (res.status >= 300 && res.status < 400) throw redirected(url, res.status, res.location);
  let parsed: unknown = res.text;
  try {
    parsed = res.text === '' ? null : JSON.parse(res.text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, body: parsed };
}

/** `send`, where anything but a 2xx is a CliError carrying the server's message. */
export async function sendOk(
  method: string,
  url: string,
  opts: { token?: string; json?: unknown; pin?: string | null; what?: string } = {},
): Promise<unknown> {
  const a = await send(method, url, opts);
  if (a.status >= 200 && a.status < 300) return a.body;
  const what = opts.what ? `${opts.what}: ` : '';
  throw new CliError(`${what}the server answered ${a.status} ${serverMessage(a)}`, exitFor(a.status));
}
