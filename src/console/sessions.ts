// Admin console sessions: in memory only (a restart signs everyone out), each a random 32-byte id
// (the amp_console cookie) with its own CSRF token, an 8 h absolute expiry, and what the sign-in
// link granted (tenant, e-mail, scopes). Expired sessions go when looked up, and a bounded
// periodic sweep removes the rest.

import { randomToken } from '../crypto/random.js';
import type { AdminPrincipal } from '../identity/routes.js';

export const SESSION_COOKIE = 'amp_console';
export const SESSION_TTL_S = 8 * 3600;
const SWEEP_INTERVAL_MS = 60_000;
/** At most this many sessions are looked at per sweep. */
const SWEEP_BUDGET = 1000;

export interface ConsoleSession {
  id: string;
  csrf: string;
  principal: AdminPrincipal;
  /** ms */
  expiresAt: number;
}

export class ConsoleSessions {
  private readonly live = new Map<string, ConsoleSession>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ttlMs = SESSION_TTL_S * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  open(principal: AdminPrincipal): ConsoleSession {
    const session = {
      id: randomToken(32),
      csrf: randomToken(32),
      principal: { tenant: principal.tenant, email: principal.email, scopes: [...principal.scopes] },
      expiresAt: this.now() + this.ttlMs,
    };
    this.live.set(session.id, session);
    return session;
  }

  /** The live session of this id, or undefined (an expired one is dropped). */
  get(id: string): ConsoleSession | undefined {
    const s = this.live.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.live.delete(id);
      return undefined;
    }
    return s;
  }

  /** The live session a Cookie header names (amp_console=...), or undefined. */
  session(cookie: string): ConsoleSession | undefined {
    const id = cookieValue(cookie, SESSION_COOKIE);
    return id === undefined ? undefined : this.get(id);
  }

  close(id: string): void {
    this.live.delete(id);
  }

  get size(): number {
    return this.live.size;
  }

  /** Drop expired sessions, looking at no more than `budget` (Map order: oldest first). */
  sweep(budget = SWEEP_BUDGET): number {
    const now = this.now();
    let dropped = 0;
    let seen = 0;
    for (const [id, s] of this.live) {
      if (++seen > budget) break;
      if (s.expiresAt <= now) {
        this.live.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.live.clear();
  }
}

/** One cookie's value from a Cookie header; the first of that name wins. */
export function cookieValue(header: string, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
