// The admin console over HTTP: signing in and out (console/session, under both API mounts), and
// the built page itself (/admin..., /agents/authorize: the AID authorization_url) with its
// Content-Security-Policy. The page then uses the public API with its session cookie (the route
// table's admin guards accept it, with the CSRF token on changes).

import { AmpError } from '../../../proto/index.js';
import { type ConsoleLogin, expiredCookie, sessionCookie } from '../../console/login.js';
import type { ConsoleFiles, StaticAnswer } from '../../console/static.js';
import { enforce, type RateLimits } from '../../relay/ratelimit.js';
import { CSRF_MESSAGE, NO_STORE, type RouteTable } from './route-table.js';
import type { HttpReply, HttpRequest } from './router.js';
import { safeEqual } from '../../crypto/hash.js';

export interface ConsoleDeps {
  login: ConsoleLogin;
  files: ConsoleFiles;
  /** Cookies get `Secure` (the server or its public URL is https). */
  secure: boolean;
  limits: RateLimits;
}

const PUBLIC = { auth: 'none' } as const;
const NO_SESSION = 'No console session (signed out, expired, or the server restarted); run amp-relay admin login';

export function addConsoleRoutes(t: RouteTable, deps: ConsoleDeps): void {
  const { login, secure } = deps;
  const sessionOf = (req: HttpRequest) => login.sessions.session(req.headers.cookie);
  t.api('POST', '/console/session', PUBLIC, async (req) => {
    const limited = enforce(deps.limits.takeForIp('console_login', req.ip), 'ip');
    // JSON only: a cross-site form (text/plain, urlencoded) cannot sign a browser in as someone else.
    if (!/^application\/json\s*(;|$)/i.test(req.headers.contentType.trim()))
      throw new AmpError('invalid_request', 'Sign in with a JSON body: Content-Type: application/json');
    const body = await req.body.json();
    const r = await login.signIn((body as Record<string, unknown>).token);
    if (!r.ok) return { status: 401, body: { error: r.error, message: r.message, details: {} }, headers: NO_STORE };
    const headers = { ...NO_STORE, ...limited, 'Set-Cookie': sessionCookie(r.session.id, secure) };
    return { status: 201, body: login.body(r.session), headers };
  });
  t.api('GET', '/console/session', PUBLIC, (req) => {
    const s = sessionOf(req);
    if (!s) throw new AmpError('unauthorized', NO_SESSION);
    return { status: 200, body: login.body(s), headers: NO_STORE };
  });
  t.api('DELETE', '/console/session', PUBLIC, (req) => {
    const s = sessionOf(req);
    if (!s) throw new AmpError('unauthorized', NO_SESSION);
    if (req.headers.csrfToken === '' || !safeEqual(req.headers.csrfToken, s.csrf))
      throw new AmpError('forbidden', CSRF_MESSAGE);
    login.sessions.close(s.id);
    return { status: 200, body: { signed_out: true }, headers: { ...NO_STORE, 'Set-Cookie': expiredCookie(secure) } };
  });
  addPageRoutes(t, deps.files);
}

/** The single-page app's paths (index.html) and its assets; not API routes (no OpenAPI entry). */
function addPageRoutes(t: RouteTable, files: ConsoleFiles): void {
  const page = () => fileReply(files.page());
  t.router.add('GET', '/agents/authorize', page);
  // Every page path, however deep; a missing asset is 404, never the page.
  t.router.subtree('/admin', (req) =>
    req.path.startsWith('/admin/assets/') ? fileReply({ kind: 'not_found' }) : page(),
  );
  t.router.add('GET', '/admin/assets/:a', (req) => fileReply(files.asset([req.params.a])));
  t.router.add('GET', '/admin/assets/:a/:b', (req) => fileReply(files.asset([req.params.a, req.params.b])));
}

function fileReply(a: StaticAnswer): HttpReply {
  if (a.kind === 'file')
    return { status: 200, headers: a.file.headers, file: { path: a.file.path, start: 0, end: a.file.size - 1 } };
  if (a.kind === 'not_found') throw new AmpError('not_found', 'No such file of the admin console');
  return {
    status: 503,
    body: { error: 'console_not_built', message: 'The admin console is not built: run npm run build', details: {} },
    headers: NO_STORE,
  };
}
