// The console session: a one-time `#login=<token>` link is traded for a cookie session
// (POST /v1/console/session); the fragment is removed from the address bar first, so a reload
// or a copied URL never carries it. Without a link, the current session is asked for.

import { ApiError, api, setCsrfToken } from './api';

export interface Session {
  email: string;
  tenant: string;
  scopes: string[];
  csrf_token: string;
  expires_at: string;
  features: { attachments: boolean; outbound: boolean };
}

export type SessionState =
  | { kind: 'loading' }
  | { kind: 'signed-in'; session: Session; loginError: string | null }
  | { kind: 'signed-out'; loginError: string | null };

/** The login token in the address bar's fragment, removed from it; null without one. */
function takeLoginToken(): string | null {
  const m = /^#login=(.+)$/.exec(location.hash);
  if (!m) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

function signedIn(session: Session, loginError: string | null = null): SessionState {
  setCsrfToken(session.csrf_token);
  return { kind: 'signed-in', session, loginError };
}

/** Sign in with the link's token if there is one, else pick up the cookie session. */
export async function loadSession(): Promise<SessionState> {
  const token = takeLoginToken();
  let loginError: string | null = null;
  if (token) {
    try {
      return signedIn(await api<Session>('/v1/console/session', { method: 'POST', body: { token }, quiet: true }));
    } catch (e) {
      loginError = e instanceof Error ? e.message : String(e);
    }
  }
  try {
    return signedIn(await api<Session>('/v1/console/session', { quiet: true }), loginError);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return { kind: 'signed-out', loginError };
    throw e;
  }
}

export async function signOut(): Promise<void> {
  await api('/v1/console/session', { method: 'DELETE' });
  setCsrfToken('');
}

/** Whether the session may change AID registrations / AMP agents and attachments. */
export const canWriteAid = (s: Session) => s.scopes.includes('agent_registrations:write');
export const canWriteAmp = (s: Session) => s.scopes.includes('amp:admin');
