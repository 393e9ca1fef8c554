// Signing in to the admin console: a sign-in link's token (checked by the identity service) is
// spent once (its jti, kept in the store until the link's expiry, so a restart does not revive it),
// then a session opens. The answer body tells the page who is signed in and what it may show.

import { isoTime } from '../../proto/index.js';
import type { ConsoleLoginCheck } from '../identity/console-login.js';
import type { RecordsStore } from '../store/types.js';
import { type ConsoleSession, type ConsoleSessions, SESSION_COOKIE, SESSION_TTL_S } from './sessions.js';

/** Seconds a spent link's id is kept after its expiry (the check allows 5 s of clock skew). */
export const SPENT_MARGIN_S = 60;

export interface ConsoleFeatures {
  /** The attachments capability is on (the held-files page works). */
  attachments: boolean;
  /** Mesh, federation or webhook targets are configured (the overview shows outbound queues). */
  outbound: boolean;
}

export interface ConsoleLoginDeps {
  check: (token: string) => Promise<ConsoleLoginCheck>;
  records: Pick<RecordsStore, 'spendOnce'>;
  sessions: ConsoleSessions;
  features: ConsoleFeatures;
}

export type SignIn =
  | { ok: true; session: ConsoleSession }
  | { ok: false; error: 'invalid_login_link' | 'login_link_used'; message: string };

export class ConsoleLogin {
  constructor(private readonly deps: ConsoleLoginDeps) {}

  get sessions(): ConsoleSessions {
    return this.deps.sessions;
  }

  async signIn(token: unknown): Promise<SignIn> {
    if (typeof token !== 'string' || token === '' || token.length > 8192)
      return {
        ok: false,
        error: 'invalid_login_link',
        message: 'The body must be {"token": "<the sign-in link token>"}',
      };
    const r = await this.deps.check(token);
    if (!r.ok) return { ok: false, error: 'invalid_login_link', message: r.message };
    const { jti, exp, tenant, email, scopes } = r.login;
    // Kept past the link's expiry by more than the clock allowance the check grants an expired
    // link, so the sweep never forgets a spent link that would still be accepted.
    const won = await this.deps.records.spendOnce('console_spent', jti, { exp: exp + SPENT_MARGIN_S });
    if (!won)
      return {
        ok: false,
        error: 'login_link_used',
        message: 'This sign-in link was used already (each works once); run amp-relay admin login again',
      };
    return { ok: true, session: this.deps.sessions.open({ tenant, email, scopes }) };
  }

  /** The body of POST and GET console/session. */
  body(s: ConsoleSession): Record<string, unknown> {
    return {
      email: s.principal.email,
      tenant: s.principal.tenant,
      scopes: [...s.principal.scopes],
      csrf_token: s.csrf,
      expires_at: isoTime(s.expiresAt),
      features: { ...this.deps.features },
    };
  }
}

/** The session cookie: HttpOnly, SameSite=Strict, whole site, 8 h; Secure when served over TLS. */
export function sessionCookie(id: string, secure: boolean): string {
  const base = `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_S}`;
  return secure ? `${base}; Secure` : base;
}

/** The cookie that ends the session in the browser. */
export function expiredCookie(secure: boolean): string {
  const base = `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  return secure ? `${base}; Secure` : base;
}
