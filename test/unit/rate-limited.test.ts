// The one 429: a refused take (or a fixed Retry-After) becomes AmpError `rate_limited` with its
// headers; AMP answers it as is, the AID surface's aidShaped() wrapper in the AID body shape (§15) with
// the same headers plus no-store.
import { describe, expect, it } from 'vitest';
import { AmpError } from '../../proto/index.js';
import { enforce, Limiter, rateLimitedError, rateLimitedFor, type Take } from '../../src/relay/ratelimit.js';
import { aidShaped as aid } from '../../src/transport/http/route-table.js';
import { errorReply } from '../../src/transport/http/respond.js';
import type { HttpRequest } from '../../src/transport/http/router.js';

/** A bucket of two, emptied at t = 1000 s: the third take is refused with Retry-After 30. */
function refusedTake(): Take {
  const l = new Limiter('t', { limit: 2, windowMs: 60_000 });
  l.take('k', 1_000_000);
  l.take('k', 1_000_000);
  return l.take('k', 1_000_000);
}

const REFUSED_HEADERS = {
  'X-RateLimit-Limit': '2',
  'X-RateLimit-Remaining': '0',
  'X-RateLimit-Reset': '1060',
  'Retry-After': '30',
};

describe('enforce (AMP)', () => {
  it('passes a granted take with its headers', () => {
    const l = new Limiter('t', { limit: 2, windowMs: 60_000 });
    expect(enforce(l.take('k', 1_000_000), 'ip')).toEqual({
      'X-RateLimit-Limit': '2',
      'X-RateLimit-Remaining': '1',
      'X-RateLimit-Reset': '1030',
    });
    expect(enforce(undefined, 'ip')).toEqual({});
  });

  it('refuses with 429 rate_limited, Retry-After and X-RateLimit-*', () => {
    let thrown: unknown;
    try {
      enforce(refusedTake(), 'ip');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(AmpError);
    const reply = errorReply(thrown as AmpError);
    expect(reply).toEqual({
      status: 429,
      body: {
        error: 'rate_limited',
        message: 'Rate limit reached (ip); retry in 30 s',
        details: { scope: 'ip', limit: 2 },
        retry_after: 30,
      },
      headers: REFUSED_HEADERS,
    });
  });
});

describe('the AID 429', () => {
  const answer = (e: Error) =>
    aid(() => {
      throw e;
    })({} as HttpRequest);

  it('from a take: AID body, Retry-After and X-RateLimit-*, no-store', async () => {
    const reply = await answer(rateLimitedError(refusedTake(), 'Too many token requests for this key; retry in 30 s'));
    expect(reply).toEqual({
      status: 429,
      body: {
        error: 'rate_limited',
        error_description: 'Too many token requests for this key; retry in 30 s',
        errors: [
          { status: '429', code: 'rate_limited', detail: 'Too many token requests for this key; retry in 30 s' },
        ],
      },
      headers: { 'Cache-Control': 'no-store', Pragma: 'no-cache', ...REFUSED_HEADERS },
    });
  });

  it('with a fixed Retry-After: no bucket headers', async () => {
    const reply = await answer(rateLimitedFor(60, 'This organisation has 200 pending registrations'));
    expect(reply.status).toBe(429);
    expect(reply.headers).toEqual({ 'Cache-Control': 'no-store', Pragma: 'no-cache', 'Retry-After': '60' });
    expect(reply.body).toMatchObject({ error: 'rate_limited', errors: [{ status: '429', code: 'rate_limited' }] });
  });
});
