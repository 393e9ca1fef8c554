// The admin CLI's HTTP side: one request at a time to the running server, its errors turned into
// messages and exit codes a script can branch on. AMP errors are `{error, message}`, AID errors
// `{error, error_description}`: both are shown as the server wrote them.

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
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e as Error).message;
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
function redirected(url: string, res: Response): CliError {
  const location = res.headers.get('location');
  let to = ' (no Location)';
  if (location)
    try {
      to = ` to ${new URL(location, url).href}`;
    } catch {
      to = ` to '${location}'`;
    }
  return new CliError(
    `the server at ${new URL(url).origin} answered ${res.status}, a redirect${to}; not followed: ` +
      'give --url the server itself (its scheme, host and port)',
    EXIT.FAILED,
  );
}

/** One HTTP request; no answer is CliError(UNREACHABLE), a redirect CliError(FAILED), any other answer as is. */
export async function send(
  method: string,
  url: string,
  opts: { token?: string; json?: unknown } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: opts.json === undefined ? undefined : JSON.stringify(opts.json),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      // Never followed: the answer (and a POST body, a same-origin token) would go to another URL.
      redirect: 'manual',
    });
  } catch (e) {
    throw unreachable(url, e);
  }
  if (res.status >= 300 && res.status < 400) throw redirected(url, res);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, body };
}

/** `send`, where anything but a 2xx is a CliError carrying the server's message. */
export async function sendOk(
  method: string,
  url: string,
  opts: { token?: string; json?: unknown; what?: string } = {},
): Promise<unknown> {
  const a = await send(method, url, opts);
  if (a.status >= 200 && a.status < 300) return a.body;
  const what = opts.what ? `${opts.what}: ` : '';
  throw new CliError(`${what}the server answered ${a.status} ${serverMessage(a)}`, exitFor(a.status));
}
