// Token buckets (spec §20): capacity = limit, continuous refill. One `Limiter` per bucket kind
// (registration per IP, route per sender, ...), keyed by IP or agent id. Idle buckets are dropped
// once full again, so memory follows active keys only. Every refusal, AMP or AID, is the one 429
// built here; the AID surface gives it the AID body shape.

import { AmpError } from '../../proto/index.js';

export interface BucketSpec {
  /** Tokens per window. */
  limit: number;
  windowMs: number;
  /** Burst capacity; defaults to `limit`. */
  burst?: number;
}

export interface Take {
  ok: boolean;
  /** Capacity (X-RateLimit-Limit). */
  limit: number;
  /** Whole tokens left (X-RateLimit-Remaining). */
  remaining: number;
  /** Unix seconds, rounded up, when the bucket is full again (X-RateLimit-Reset). */
  resetAt: number;
  /** Whole seconds until one token, >= 1 (Retry-After), when refused. */
  retryAfter: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const SWEEP_EVERY_TAKES = 4096;

export class Limiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly capacity: number;
  private readonly perMs: number;
  private takes = 0;
  readonly perMinute: number;

  constructor(
    readonly name: string,
    spec: BucketSpec,
  ) {
    this.capacity = spec.burst ?? spec.limit;
    this.perMs = spec.limit / spec.windowMs;
    this.perMinute = Math.round(this.perMs * 60_000);
  }

  /** Take one token for `key` at `now` (ms). */
  take(key: string, now: number = Date.now()): Take {
    if (++this.takes % SWEEP_EVERY_TAKES === 0) this.sweep(now);
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { tokens: this.capacity, at: now }));
    b.tokens = Math.min(this.capacity, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    const toFullMs = (this.capacity - b.tokens) / this.perMs;
    return {
      ok,
      limit: this.capacity,
      remaining: Math.floor(b.tokens),
      resetAt: Math.ceil((now + toFullMs) / 1000),
      retryAfter: ok ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)),
    };
  }

  /** Would a take for `key` succeed now? Takes nothing (for buckets that count failures only). */
  peek(key: string, now: number = Date.now()): Take {
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.capacity, b.tokens + (now - b.at) * this.perMs) : this.capacity;
    const ok = tokens >= 1;
    return {
      ok,
      limit: this.capacity,
      remaining: Math.floor(tokens),
      resetAt: Math.ceil((now + (this.capacity - tokens) / this.perMs) / 1000),
      retryAfter: ok ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000)),
    };
  }

  /** Refill `key` completely (e.g. the per-fingerprint token bucket after a success). */
  reset(key: string): void {
    this.buckets.delete(key);
  }

  /** Forget buckets that have refilled completely (they behave like new ones). */
  private sweep(now: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + (now - b.at) * this.perMs >= this.capacity) this.buckets.delete(k);
  }

  size(): number {
    return this.buckets.size;
  }
}

/** Of several takes, the one to report in headers: a refusal, else the fewest tokens left. */
export function mostConstrained(takes: Take[]): Take {
  return takes.reduce((a, b) => (!a.ok ? a : !b.ok ? b : b.remaining < a.remaining ? b : a));
}

export function rateLimitHeaders(t: Take): Record<string, string> {
  const h: Record<string, string> = {
    'X-RateLimit-Limit': String(t.limit),
    'X-RateLimit-Remaining': String(t.remaining),
    'X-RateLimit-Reset': String(t.resetAt),
  };
  if (!t.ok) h['Retry-After'] = String(t.retryAfter);
  return h;
}

export type BucketName =
  | 'register'
  | 'route'
  | 'route_hour'
  | 'receive'
  | 'pending'
  | 'api'
  | 'ws_connect'
  | 'ws_frames'
  // Agent identity (agent-identity §14), the same in both profiles.
  | 'aid_token'
  | 'aid_token_key'
  | 'aid_request'
  | 'aid_request_key'
  | 'aid_lookup_failures'
  | 'aid_introspect'
  // Federation (§19.1): per delivering provider, per recipient of one provider, and overall (verified
  // requests), and failed provider signatures per client IP.
  | 'federation'
  | 'federation_recipient'
  | 'federation_total'
  | 'federation_failures'
  // Admin console sign-ins per client IP (POST console/session).
  | 'console_login';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** agent-identity §14: token exchange per tenant and per fingerprint, /request per IP and per key, failed code lookups per IP, introspection per caller. */
const AID_BUCKETS: Partial<Record<BucketName, BucketSpec>> = {
  aid_token: { limit: 200, windowMs: MIN },
  aid_token_key: { limit: 30, windowMs: MIN },
  aid_request: { limit: 10, windowMs: HOUR },
  aid_request_key: { limit: 100, windowMs: DAY },
  aid_lookup_failures: { limit: 20, windowMs: 10 * MIN },
  aid_introspect: { limit: 600, windowMs: MIN },
};

/** §19.1: deliveries from other providers, the same in both profiles. */
const FEDERATION_BUCKETS: Partial<Record<BucketName, BucketSpec>> = {
  federation: { limit: 100, windowMs: MIN },
  federation_recipient: { limit: 20, windowMs: MIN },
  federation_total: { limit: 1000, windowMs: MIN },
  federation_failures: { limit: 100, windowMs: MIN },
};

/** Admin console sign-ins, the same in both profiles. */
const CONSOLE_BUCKETS: Partial<Record<BucketName, BucketSpec>> = {
  console_login: { limit: 30, windowMs: MIN },
};

/** Spec §20: `local` (the default, agent swarms on one host) and `public` (Internet-facing). */
export const PROFILES: Record<'local' | 'public', Partial<Record<BucketName, BucketSpec>>> = {
  local: {
    register: { limit: 60, windowMs: MIN },
    route: { limit: 6000, windowMs: MIN, burst: 600 },
    receive: { limit: 12_000, windowMs: MIN },
    pending: { limit: 600, windowMs: MIN },
    api: { limit: 1200, windowMs: MIN },
    ws_connect: { limit: 600, windowMs: MIN },
    ws_frames: { limit: 6000, windowMs: MIN },
    ...AID_BUCKETS,
    ...FEDERATION_BUCKETS,
    ...CONSOLE_BUCKETS,
  },
  public: {
    register: { limit: 10, windowMs: MIN },
    route: { limit: 60, windowMs: MIN },
    route_hour: { limit: 500, windowMs: HOUR },
    receive: { limit: 120, windowMs: MIN },
    pending: { limit: 30, windowMs: MIN },
    api: { limit: 100, windowMs: MIN },
    ws_connect: { limit: 30, windowMs: MIN },
    ws_frames: { limit: 1200, windowMs: MIN },
    ...AID_BUCKETS,
    ...FEDERATION_BUCKETS,
    ...CONSOLE_BUCKETS,
  },
};

const UNIT_MS: Record<string, number> = { s: 1000, min: MIN, h: HOUR, d: DAY };

/** `route=100/min` entries (validated by the config schema). */
export function parseOverrides(entries: readonly string[]): Partial<Record<BucketName, BucketSpec>> {
  const out: Partial<Record<BucketName, BucketSpec>> = {};
  for (const e of entries) {
    const m = /^([a-z_]+)=(\d+)\/(s|min|h|d)$/.exec(e);
    if (m) out[m[1] as BucketName] = { limit: Number(m[2]), windowMs: UNIT_MS[m[3]] };
  }
  return out;
}

/** Loopback peers (the local profile exempts them from per-IP buckets). */
export function isLoopback(ip: string): boolean {
  const a = ip.toLowerCase();
  return (
    a.startsWith('127.') ||
    a === '::1' ||
    /^(0{1,4}:){7}0{0,3}1$/.test(a) ||
    /^(::ffff:|(0{1,4}:){5}ffff:)(127\.|7f)/.test(a)
  );
}

export interface RateLimitConfig {
  rateLimits: 'on' | 'off';
  rateLimitProfile: 'local' | 'public';
  rateLimitOverrides: readonly string[];
}

/** All buckets of the server. A bucket that is off (or undefined in the profile) always allows. */
export class RateLimits {
  private readonly limiters = new Map<BucketName, Limiter>();
  readonly enabled: boolean;
  readonly exemptLoopback: boolean;

  constructor(cfg: RateLimitConfig) {
    this.enabled = cfg.rateLimits === 'on';
    this.exemptLoopback = cfg.rateLimitProfile === 'local';
    const specs = { ...PROFILES[cfg.rateLimitProfile], ...parseOverrides(cfg.rateLimitOverrides) };
    for (const [name, spec] of Object.entries(specs) as [BucketName, BucketSpec][])
      this.limiters.set(name, new Limiter(name, spec));
  }

  spec(name: BucketName): Limiter | undefined {
    return this.limiters.get(name);
  }

  /** Take from every named bucket; the most constrained answer, or undefined when none apply. */
  take(buckets: Array<[BucketName, string]>, now: number = Date.now()): Take | undefined {
    if (!this.enabled) return undefined;
    const takes: Take[] = [];
    for (const [name, key] of buckets) {
      const l = this.limiters.get(name);
      if (l) takes.push(l.take(key, now));
    }
    return takes.length ? mostConstrained(takes) : undefined;
  }

  /** Per-IP buckets: loopback is exempt in the local profile. */
  takeForIp(name: BucketName, ip: string): Take | undefined {
    if (this.exemptLoopback && isLoopback(ip)) return undefined;
    return this.take([[name, ip]]);
  }

  /** A failure-counting bucket: is there room for one more failure? Takes nothing. */
  peek(name: BucketName, key: string, now: number = Date.now()): Take | undefined {
    return this.enabled ? this.limiters.get(name)?.peek(key, now) : undefined;
  }

  reset(name: BucketName, key: string): void {
    this.limiters.get(name)?.reset(key);
  }

  /** Limits in force, per minute, for /v1/info. */
  perMinute(name: BucketName): number | null {
    const l = this.limiters.get(name);
    return this.enabled && l ? l.perMinute : null;
  }
}

/** A refused take as a 429 `rate_limited`: Retry-After and the X-RateLimit-* headers of the bucket. */
export function rateLimitedError(take: Take, message: string, details: Record<string, unknown> = {}): AmpError {
  return new AmpError('rate_limited', message, {
    retryAfter: take.retryAfter,
    headers: rateLimitHeaders(take),
    details,
  });
}

/** A 429 `rate_limited` for a cap that is no token bucket (e.g. pending registrations): a fixed Retry-After. */
export function rateLimitedFor(retryAfterS: number, message: string): AmpError {
  return new AmpError('rate_limited', message, { retryAfter: retryAfterS });
}

/** Refuse with 429 `rate_limited` when the take failed; else the headers to send. */
export function enforce(take: Take | undefined, scope: string): Record<string, string> {
  if (!take) return {};
  if (take.ok) return rateLimitHeaders(take);
  throw rateLimitedError(take, `Rate limit reached (${scope}); retry in ${take.retryAfter} s`, {
    scope,
    limit: take.limit,
  });
}
