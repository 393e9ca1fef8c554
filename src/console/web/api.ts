// Every request the console makes: same origin, the session cookie, JSON both ways, and the
// CSRF token on anything that changes state. A refusal becomes an ApiError carrying the
// server's own message (AMP `{error, message}` or AID `{error, error_description}`), which the
// page shows as text in the error banner.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let csrfToken = '';
type ErrorListener = (message: string | null) => void;
const errorListeners = new Set<ErrorListener>();
let onSignedOut: (() => void) | null = null;

/** Called when a request answers 401 while signed in (the session expired or the server restarted). */
export function whenSignedOut(fn: (() => void) | null): void {
  onSignedOut = fn;
}

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** The banner follows these: a message, or null to clear it. */
export function onApiError(fn: ErrorListener): () => void {
  errorListeners.add(fn);
  return () => errorListeners.delete(fn);
}

export function showError(message: string | null): void {
  for (const fn of errorListeners) fn(message);
}

async function errorOf(res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    // not JSON: the status says enough
  }
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const code = text(body.error) ?? `http_${res.status}`;
  const message = text(body.message) ?? text(body.error_description) ?? `${res.status} ${res.statusText || code}`;
  return new ApiError(res.status, code, message);
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: unknown;
  /** Do not show a refusal in the banner (the caller shows it itself). */
  quiet?: boolean;
}

/** JSON from `path` (same origin); throws ApiError on a non-2xx answer, after showing it. */
export async function api<T = Record<string, unknown>>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = opts.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch {
    const err = new ApiError(0, 'network', 'The server did not answer (network error)');
    if (!opts.quiet) showError(err.message);
    throw err;
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (!opts.quiet) showError(err.message);
    if (res.status === 401 && !opts.quiet) onSignedOut?.();
    throw err;
  }
  if (res.status === 204) return {} as T;
  return (await res.json()) as T;
}

/** Whether the session still lives (after a lost live stream, say): a 401 signs the page out. */
export async function checkSignedIn(): Promise<void> {
  try {
    await api('/v1/console/session', { quiet: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) onSignedOut?.();
  }
}

/** A query string of the non-empty values (with its leading `?`), or ''. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;
