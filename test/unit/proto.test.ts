// Table-driven tests of the pure protocol module (proto/). Expected values come from the spec
// (/work/shared/spec/amp-provider.md §2, §4, §8, §9, §10, §12.1, §17.7, §21), not from proto itself.
import { describe, expect, it } from 'vitest';
import {
  AmpError,
  ERROR_CATALOG,
  GENERATED_MESSAGE_ID_RE,
  compareCodePoints,
  codePointLength,
  decodeRegisterBody,
  decodeRouteBody,
  expandAddress,
  isAcceptedMessageId,
  isAmpError,
  isGeneratedMessageId,
  localParts,
  newMessageId,
  parseIsoDateTime,
  shouldReconnect,
} from '../../proto/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const NOW = Date.UTC(2026, 0, 1); // 2026-01-01T00:00:00Z
// sig-001 of the vectors (64 bytes, contains '+', padded).
const SIG_B64 = 'NjHyy8eRHM3ImU72p0SFrIhXR3kCL1+kC85CHuiC5HMvdJ9KOgNHELireaTVLxnykGMWTY1mI21wHSTSjek+AQ==';
const SIG_URL = SIG_B64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function thrown(fn: () => unknown): AmpError {
  try {
    fn();
  } catch (e) {
    expect(isAmpError(e)).toBe(true);
    return e as AmpError;
  }
  throw new Error('expected an AmpError, nothing was thrown');
}

const base = (): Any => ({ to: 'bob', subject: 'Hello', payload: { type: 'notification', message: 'Hi' } });
const without = (path: string): Any => {
  const b = base(),
    [a, c] = path.split('.');
  if (c) delete b[a][c];
  else delete b[a];
  return b;
};
const decodeRoute = (body: unknown, headerIdempotencyKey?: string) =>
  decodeRouteBody(body, { nowMs: NOW, headerIdempotencyKey });

describe('decodeRouteBody: accepted bodies', () => {
  it('flat minimal body gets defaults', () => {
    expect(decodeRoute(base())).toStrictEqual({
      to: 'bob',
      subject: 'Hello',
      priority: 'normal',
      receipt: false,
      payload: { type: 'notification', message: 'Hi' },
    });
  });

  it('flat full body (spec §12.1 example)', () => {
    const r = decodeRoute({
      ...base(),
      to: 'Claude@MacBook.aimaestro.local',
      priority: 'urgent',
      in_reply_to: 'msg_1706648400_abc123',
      thread_id: 'msg-1706648400-ABC',
      expires_at: '2026-01-08T00:00:00Z',
      signature: SIG_B64,
      options: { receipt: true },
      idempotency_key: 'idk_550e8400-e29b-41d4-a716-446655440000',
      from: 'my-agent@local.aimaestro.local',
    });
    expect({ ...r, signatureBytes: r.signatureBytes?.toString('hex') }).toStrictEqual({
      to: 'Claude@MacBook.aimaestro.local', // kept as received
      subject: 'Hello',
      priority: 'urgent',
      in_reply_to: 'msg_1706648400_abc123',
      thread_id: 'msg-1706648400-ABC',
      expires_at: '2026-01-08T00:00:00.000Z',
      expiresAtMs: Date.UTC(2026, 0, 8),
      signature: SIG_B64,
      signatureBytes: Buffer.from(SIG_B64, 'base64').toString('hex'),
      receipt: true,
      idempotency_key: 'idk_550e8400-e29b-41d4-a716-446655440000',
      from: 'my-agent@local.aimaestro.local',
      payload: { type: 'notification', message: 'Hi' },
    });
  });

  it('null means absent; payload (context: null) is kept untouched', () => {
    const payload = { type: 'request', message: '', context: null, extra: [1, { z: 1 }] };
    const r = decodeRoute({
      ...base(),
      payload,
      priority: null,
      in_reply_to: null,
      thread_id: null,
      expires_at: null,
      signature: null,
      from: null,
      idempotency_key: null,
      options: null,
    });
    expect(r).toStrictEqual({ to: 'bob', subject: 'Hello', priority: 'normal', receipt: false, payload });
  });

  it('envelope form: fields come from envelope, which wins over top level; id/timestamp/version ignored', () => {
    const r = decodeRoute({
      envelope: {
        id: 'msg_1_x',
        timestamp: '2020-01-01T00:00:00Z',
        version: 'amp/0.1',
        to: 'alice@acme.crabmail.ai',
        subject: 'Env',
        priority: 'high',
        in_reply_to: 'msg_1706648400_abc123',
        thread_id: null,
        expires_at: '2026-02-01T00:00:00+01:00',
        signature: SIG_URL,
        idempotency_key: 'env-key',
      },
      payload: { type: 'notification', message: 'Hello' },
      idempotency_key: 'top-key',
      options: { receipt: true },
    });
    expect(r).toMatchObject({
      to: 'alice@acme.crabmail.ai',
      subject: 'Env',
      priority: 'high',
      in_reply_to: 'msg_1706648400_abc123',
      expires_at: '2026-01-31T23:00:00.000Z',
      signature: SIG_URL,
      idempotency_key: 'env-key',
      receipt: true,
      payload: { type: 'notification', message: 'Hello' },
    });
    for (const k of ['thread_id', 'id', 'timestamp', 'version']) expect(r).not.toHaveProperty(k);
  });

  it.each([undefined, null])('envelope idempotency_key %s: the top-level one is used', (k) => {
    const r = decodeRoute({
      envelope: { to: 'bob', subject: 'S', idempotency_key: k },
      payload: base().payload,
      idempotency_key: 'top-key',
    });
    expect(r.idempotency_key).toBe('top-key');
  });

  it.each([
    ['body key wins over header', { idempotency_key: 'body-key' }, 'hdr-key', 'body-key'],
    ['header used when body has none', {}, 'hdr-key', 'hdr-key'],
    ['header used when body key is null', { idempotency_key: null }, 'hdr-key', 'hdr-key'],
    ['none at all', {}, undefined, undefined],
  ])('idempotency: %s', (_n, extra, header, expected) => {
    expect(decodeRoute({ ...base(), ...extra }, header).idempotency_key).toBe(expected);
  });

  it.each([
    ['standard padded', SIG_B64],
    ['standard unpadded', SIG_B64.replace(/=+$/, '')],
    ['base64url unpadded', SIG_URL],
    ['base64url padded', SIG_URL + '=='],
  ])('signature accepted: %s', (_n, sig) => {
    const r = decodeRoute({ ...base(), signature: sig });
    expect(r.signature).toBe(sig);
    expect(r.signatureBytes?.length).toBe(64);
    expect(r.signatureBytes?.equals(Buffer.from(SIG_B64, 'base64'))).toBe(true);
  });

  it.each([
    ['256 astral code points (512 UTF-16 units)', { subject: '😀'.repeat(256) }],
    ['message of exactly 65536 UTF-8 bytes (2-byte chars)', { payload: { type: 'a', message: 'é'.repeat(32768) } }],
    [
      'context of exactly 262144 compact JSON bytes',
      { payload: { type: 'a', message: '', context: { k: 'a'.repeat(262144 - 8) } } },
    ],
    ['namespaced payload type', { payload: { type: 'github:pull_request', message: 'x' } }],
    ['empty message', { payload: { type: 'status', message: '' } }],
  ])('limits: %s is accepted', (_n, extra) => expect(() => decodeRoute({ ...base(), ...extra })).not.toThrow());
});

describe('decodeRouteBody: errors', () => {
  it.each([null, [], 'string', 42, true])('non-object %j -> 400 invalid_request', (b) => {
    const e = thrown(() => decodeRoute(b));
    expect([e.code, e.status]).toEqual(['invalid_request', 400]);
  });

  it.each(['to', 'subject', 'payload', 'payload.type', 'payload.message'])('missing %s -> 400 missing_field', (f) => {
    const e = thrown(() => decodeRoute(without(f)));
    expect([e.code, e.status, e.field]).toEqual(['missing_field', 400, f]);
  });

  it.each([
    ['priority critical', { priority: 'critical' }, 'priority'],
    ['priority uppercase', { priority: 'HIGH' }, 'priority'],
    ['priority not a string', { priority: 5 }, 'priority'],
    ['to not a string', { to: 5 }, 'to'],
    ['payload not an object', { payload: 'x' }, 'payload'],
    ['context an array', { payload: { type: 'a', message: 'b', context: [] } }, 'payload.context'],
    ['bad payload.type', { payload: { type: '-x', message: 'b' } }, 'payload.type'],
    ['payload.type 65 chars', { payload: { type: 'a'.repeat(65), message: 'b' } }, 'payload.type'],
    ['empty subject', { subject: '' }, 'subject'],
    ['in_reply_to traversal', { in_reply_to: '../../../etc/passwd' }, 'in_reply_to'],
    ['in_reply_to with slash', { in_reply_to: 'msg_1706648400_abc/123' }, 'in_reply_to'],
    ['thread_id bad', { thread_id: 'thread-1' }, 'thread_id'],
    ['expires_at in the past', { expires_at: '2025-12-31T23:59:59Z' }, 'expires_at'],
    ['expires_at equal to now', { expires_at: '2026-01-01T01:00:00+01:00' }, 'expires_at'],
    ['expires_at not ISO', { expires_at: 'tomorrow' }, 'expires_at'],
    ['expires_at without zone', { expires_at: '2026-01-08T00:00:00' }, 'expires_at'],
    ['signature 63 bytes', { signature: Buffer.alloc(63, 1).toString('base64') }, 'signature'],
    ['signature 65 bytes', { signature: Buffer.alloc(65, 1).toString('base64') }, 'signature'],
    ['signature not base64', { signature: 'not base64!' }, 'signature'],
    ['signature bad padding', { signature: SIG_URL + '===' }, 'signature'],
    ['idempotency_key with space', { idempotency_key: 'has space' }, 'idempotency_key'],
    ['idempotency_key 129 chars', { idempotency_key: 'k'.repeat(129) }, 'idempotency_key'],
  ])('%s -> 400 invalid_field', (_n, extra, field) => {
    const e = thrown(() => decodeRoute({ ...base(), ...extra }));
    expect([e.code, e.status, e.field]).toEqual(['invalid_field', 400, field]);
  });

  it('invalid Idempotency-Key header -> invalid_field', () =>
    expect(thrown(() => decodeRoute(base(), 'bad key/')).field).toBe('idempotency_key'));

  it.each([
    ['subject 257 astral code points', { subject: '😀'.repeat(257) }, 'subject', 256, 257],
    ['subject 257 ASCII', { subject: 's'.repeat(257) }, 'subject', 256, 257],
    [
      'message 65537 ASCII bytes',
      { payload: { type: 'a', message: 'a'.repeat(65537) } },
      'payload.message',
      65536,
      65537,
    ],
    [
      'message 32769 two-byte chars',
      { payload: { type: 'a', message: 'é'.repeat(32769) } },
      'payload.message',
      65536,
      65538,
    ],
    [
      'context 262145 bytes',
      { payload: { type: 'a', message: '', context: { k: 'a'.repeat(262144 - 7) } } },
      'payload.context',
      262144,
      262145,
    ],
    [
      'context of 2-byte chars (UTF-16 length under the limit)',
      { payload: { type: 'a', message: '', context: { k: 'é'.repeat(131069) } } },
      'payload.context',
      262144,
      262146,
    ],
  ])('%s -> 413 payload_too_large', (_n, extra, field, limit, actual) => {
    const e = thrown(() => decodeRoute({ ...base(), ...extra }));
    expect([e.code, e.status, e.field]).toEqual(['payload_too_large', 413, field]);
    expect(e.details).toEqual({ limit, actual });
  });

  it('payload.attachments -> 422 attachments_not_supported', () => {
    const e = thrown(() => decodeRoute({ ...base(), payload: { type: 'message', message: 'x', attachments: [] } }));
    expect([e.code, e.status]).toEqual(['attachments_not_supported', 422]);
  });
});

describe('decodeRegisterBody', () => {
  const PEM =
    '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----';
  const reg = (extra: Any = {}) => decodeRegisterBody({ name: 'my-agent', public_key: PEM, ...extra }, 'default');
  const regErr = (extra: Any) => thrown(() => reg(extra));

  it('defaults', () => {
    expect(reg()).toStrictEqual({
      name: 'my-agent',
      tenant: 'default',
      public_key: PEM,
      prefer_websocket: true,
      metadata: {},
      capabilities: [],
    });
  });

  it('lowercases name, tenant and scope; keeps alias, capabilities, metadata exactly', () => {
    const r = reg({
      name: 'My-Agent',
      tenant: 'Local',
      scope: { platform: 'GitHub', repo: 'Agents-Web' },
      alias: 'My Agent',
      capabilities: ['Threading'],
      metadata: { A: 1 },
      delivery: { prefer_websocket: false },
      agent_id: 'uuid-1',
      proof: { timestamp: 1767225600, signature: 'c2ln' },
    });
    expect(r).toStrictEqual({
      name: 'my-agent',
      tenant: 'local',
      public_key: PEM,
      alias: 'My Agent',
      scope: { platform: 'github', repo: 'agents-web' },
      prefer_websocket: false,
      metadata: { A: 1 },
      capabilities: ['Threading'],
      client_agent_id: 'uuid-1',
      proof: { timestamp: '1767225600', signature: 'c2ln' },
    });
  });

  it.each([
    'v1',
    'api',
    'agents',
    'admin',
    'oauth',
    'health',
    'metrics',
    'ws',
    'well-known',
    'static',
    'docs',
    'dashboard',
    'ADMIN',
  ])('reserved tenant %s -> invalid_field tenant', (tenant) => {
    const e = regErr({ tenant });
    expect([e.code, e.status, e.field]).toEqual(['invalid_field', 400, 'tenant']);
  });

  it.each(['-agent', '_agent', 'a b', 'agent!', 'a'.repeat(64), '', 'bob@x'])(
    'bad name %j -> invalid_field name',
    (name) => {
      expect([regErr({ name }).code, regErr({ name }).field]).toEqual(['invalid_field', 'name']);
    },
  );

  it.each(['acme-', '-acme', 'ac_me', 'a'.repeat(64), ''])('bad tenant %j -> invalid_field tenant', (tenant) =>
    expect(regErr({ tenant }).field).toBe('tenant'),
  );

  it.each([['name'], ['public_key']])('missing %s -> missing_field', (f) => {
    const body: Any = { name: 'x', public_key: PEM };
    delete body[f];
    const e = thrown(() => decodeRegisterBody(body, 'default'));
    expect([e.code, e.field]).toEqual(['missing_field', f]);
  });

  it.each([null, [], 'x'])('non-object %j -> invalid_request', (b) =>
    expect(thrown(() => decodeRegisterBody(b, 'default')).code).toBe('invalid_request'),
  );

  it('RSA key_algorithm: exact message and details from spec §4', () => {
    const e = regErr({ key_algorithm: 'RSA' });
    expect(e.toBody()).toEqual({
      error: 'invalid_field',
      field: 'key_algorithm',
      message: "key_algorithm 'RSA' is not supported by this provider; only Ed25519 is accepted",
      details: { supported: ['Ed25519'] },
    });
  });

  it.each(['Ed25519', 'ed25519', 'ED25519', null])('key_algorithm %j accepted', (key_algorithm) =>
    expect(reg({ key_algorithm }).name).toBe('my-agent'),
  );

  it.each([
    ['platform only', { scope: { platform: 'github' } }, 'scope'],
    ['repo only', { scope: { repo: 'web' } }, 'scope'],
    ['bad platform label', { scope: { platform: 'git hub', repo: 'web' } }, 'scope.platform'],
    // §4: webhook_url needs a webhook_secret of at least 16 characters (the SSRF rules are the relay's).
    [
      'webhook_url without a secret',
      { delivery: { webhook_url: 'https://hooks.example.com/amp' } },
      'delivery.webhook_secret',
    ],
    [
      'webhook_secret of 15 chars',
      { delivery: { webhook_url: 'https://hooks.example.com/amp', webhook_secret: 'whsec_012345678' } },
      'delivery.webhook_secret',
    ],
    ['webhook_secret alone', { delivery: { webhook_secret: 'whsec_0123456789abcdef' } }, 'delivery.webhook_secret'],
    ['33 capabilities', { capabilities: Array.from({ length: 33 }, (_, i) => `c${i}`) }, 'capabilities'],
    ['capability of 65 chars', { capabilities: ['c'.repeat(65)] }, 'capabilities'],
    ['alias of 129 code points', { alias: '😀'.repeat(129) }, 'alias'],
    ['metadata over 16 KiB', { metadata: { k: 'm'.repeat(16384) } }, 'metadata'],
    ['proof timestamp not digits', { proof: { timestamp: 'abc', signature: 'x' } }, 'proof.timestamp'],
  ])('%s -> invalid_field', (_n, extra, field) => {
    const e = regErr(extra);
    expect([e.code, e.field]).toEqual(['invalid_field', field]);
  });

  it('keeps a webhook_url with its secret (the relay checks the URL by the SSRF rules)', () => {
    const delivery = { webhook_url: 'https://hooks.example.com/amp', webhook_secret: 'whsec_0123456789abcdef' };
    expect(reg({ delivery }).webhook).toEqual({ url: delivery.webhook_url, secret: delivery.webhook_secret });
    expect(reg({ delivery: { webhook_url: null } }).webhook).toBeUndefined();
  });

  it.each([
    ['32 capabilities of 64 chars', { capabilities: Array.from({ length: 32 }, (_, i) => String(i).padEnd(64, 'c')) }],
    ['alias of 128 astral code points', { alias: '😀'.repeat(128) }],
    ['scope with neither field', { scope: {} }],
  ])('%s accepted', (_n, extra) => expect(() => reg(extra)).not.toThrow());
});

describe('expandAddress (§2 short forms)', () => {
  const ctx = { senderTenant: 'acme', domain: 'aimaestro.local' };
  const name63 = 'a'.repeat(63);
  const at254 = `${name63}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(46)}.aimaestro.local`;
  it('boundary fixture is 254 chars', () => expect(at254.length).toBe(254));

  it.each([
    ['bob', 'bob@acme.aimaestro.local'],
    ['bob@team', 'bob@team.aimaestro.local'],
    ['Bob@ACME.AiMaestro.Local', 'bob@acme.aimaestro.local'],
    ['BOB', 'bob@acme.aimaestro.local'],
    ['bob@acme.crabmail.ai', 'bob@acme.crabmail.ai'],
    ['bob@web.github.acme.aimaestro.local', 'bob@web.github.acme.aimaestro.local'],
    [at254, at254],
  ])('%s -> %s', (input, expected) => expect(expandAddress(input, ctx)).toEqual({ ok: true, address: expected }));

  it.each([
    ['bob@aimaestro.local', 'no_tenant'],
    ['bob@AIMAESTRO.LOCAL', 'no_tenant'],
    ['bo b', 'grammar'],
    [' bob', 'grammar'],
    ['bob@ac me.aimaestro.local', 'grammar'],
    ['bob@acme.aimaestro.local\n', 'grammar'],
    ['bob@@acme.aimaestro.local', 'grammar'],
    ['', 'grammar'],
    ['a'.repeat(64), 'grammar'],
    ['bob@crabmail.ai', 'grammar'],
    [at254.replace('d'.repeat(46), 'd'.repeat(47)), 'grammar'],
  ])('%j -> problem %s', (input, problem) => expect(expandAddress(input, ctx)).toEqual({ ok: false, problem }));
});

describe('localParts', () => {
  it.each([
    ['bob@acme.aimaestro.local', { name: 'bob', tenant: 'acme' }],
    ['bob@github.acme.aimaestro.local', { name: 'bob', tenant: 'acme', platform: 'github' }],
    ['bob@web.github.acme.aimaestro.local', { name: 'bob', tenant: 'acme', platform: 'github', repo: 'web' }],
    ['bob@x.web.github.acme.aimaestro.local', null],
  ])('%s', (full, expected) => expect(localParts(full, 'aimaestro.local')).toStrictEqual(expected));
});

describe('compareCodePoints / codePointLength', () => {
  it.each([
    ['a', 'b', -1],
    ['b', 'a', 1],
    ['a', 'a', 0],
    ['a', 'ab', -1],
    ['B', 'a', -1],
    ['10', '9', -1],
    ['\uFB01', '😀', -1],
    ['😀', '\uFB01', 1],
    ['😀', '\uFFFF', 1],
    ['😀', '😁', -1],
  ])('%j vs %j -> sign %d', (a, b, sign) => expect(Math.sign(compareCodePoints(a, b))).toBe(sign));

  it('sorts by code point, unlike the default UTF-16 sort', () => {
    const keys = ['😀', '\uFB01', 'a', 'b', 'B', '9', '10'];
    expect([...keys].sort(compareCodePoints)).toEqual(['10', '9', 'B', 'a', 'b', '\uFB01', '😀']);
    expect([...keys].sort()).not.toEqual([...keys].sort(compareCodePoints));
  });

  it.each([
    ['', 0],
    ['abc', 3],
    ['😀', 1],
    ['😀'.repeat(257), 257],
    ['é', 1],
    ['e\u0301', 2],
    ['\uD83D', 1],
    ['\uD83Dx', 2],
    ['\uDE00\uD83D', 2],
  ])('codePointLength(%j) = %d', (s, n) => expect(codePointLength(s)).toBe(n));
});

describe('parseIsoDateTime', () => {
  it.each([
    ['2026-01-01T00:00:00Z', Date.UTC(2026, 0, 1)],
    ['2026-01-01T01:00:00+01:00', Date.UTC(2026, 0, 1)],
    ['2026-01-01T01:00:00+0100', Date.UTC(2026, 0, 1)],
    ['2025-12-31T19:00:00-05:00', Date.UTC(2026, 0, 1)],
    ['2026-01-01T00:00:00.123Z', Date.UTC(2026, 0, 1) + 123],
    ['2026-01-01 00:00:00Z', Date.UTC(2026, 0, 1)],
    ['2026-01-01T00:00Z', Date.UTC(2026, 0, 1)],
  ])('%s', (s, ms) => expect(parseIsoDateTime(s)).toBe(ms));

  it.each([
    '2026-01-01',
    '2026-01-01T00:00:00',
    'tomorrow',
    '',
    '2026-13-01T00:00:00Z',
    '1767225600',
    '2026-01-01T00:00:00+1',
  ])('invalid %j -> null', (s) => expect(parseIsoDateTime(s)).toBeNull());
});

describe('AmpError and ERROR_CATALOG (§21)', () => {
  it('toBody shape: error, message, details always; field only when set', () => {
    const e = new AmpError('payload_too_large', 'too big', { field: 'subject', details: { limit: 256, actual: 257 } });
    expect(e).toBeInstanceOf(Error);
    expect(e.status).toBe(413);
    expect(e.toBody()).toStrictEqual({
      error: 'payload_too_large',
      message: 'too big',
      field: 'subject',
      details: { limit: 256, actual: 257 },
    });
    expect(new AmpError('not_found', 'Agent not found').toBody()).toStrictEqual({
      error: 'not_found',
      message: 'Agent not found',
      details: {},
    });
  });

  it('toBody adds retry_after and suggestions', () => {
    const body = new AmpError('rate_limited', 'slow down', { retryAfter: 7 }).toBody();
    expect(body).toStrictEqual({ error: 'rate_limited', message: 'slow down', details: {}, retry_after: 7 });
    const s = ['my-agent-2'];
    expect(
      new AmpError('name_taken', 'taken', { field: 'name', suggestions: s, details: { suggestions: s } }).toBody(),
    ).toStrictEqual({
      error: 'name_taken',
      message: 'taken',
      field: 'name',
      suggestions: s,
      details: { suggestions: s },
    });
  });

  // [code, HTTP, retry] straight from the spec §21 table.
  const SPEC: Array<[string, number, boolean]> = [
    ['invalid_request', 400, false],
    ['missing_field', 400, false],
    ['invalid_field', 400, false],
    ['timestamp_future', 400, false],
    ['unauthorized', 401, false],
    ['forbidden', 403, false],
    ['tenant_access_denied', 403, false],
    ['agent_suspended', 403, false],
    ['recipient_suspended', 403, false],
    ['key_revoked', 403, false],
    ['signature_invalid', 403, false],
    ['not_found', 404, false],
    ['method_not_allowed', 405, false],
    ['name_taken', 409, false],
    ['key_already_registered', 409, false],
    ['duplicate_idempotency_key', 409, false],
    ['request_too_large', 413, false],
    ['payload_too_large', 413, false],
    ['external_provider', 422, false],
    ['signature_missing', 422, false],
    ['attachments_not_supported', 422, false],
    ['queue_full', 429, true],
    ['rate_limited', 429, true],
    ['internal_error', 500, true],
    ['service_unavailable', 503, true],
  ];
  /** Codes the spec's table lacks, each for a condition it does not name: a full disk (issue 13). */
  const EXTENSIONS: Array<[string, number, boolean]> = [
    ['insufficient_storage', 507, true],
    // Cluster mode (issue 18): the shared store (NATS) cannot be reached; nothing was stored.
    ['store_unavailable', 503, true],
    // §22 attachments: the spec's codes, then ours for the upload URL and the bytes.
    ['attachment_not_found', 404, false],
    ['attachment_expired', 410, false],
    ['attachment_pending', 409, true],
    ['attachment_held', 409, false],
    ['attachment_rejected', 422, false],
    ['attachment_already_used', 409, false],
    ['too_many_attachments', 400, false],
    ['attachment_too_large', 413, false],
    ['attachment_quota_exceeded', 429, true],
    ['invalid_digest_algorithm', 422, false],
    ['attachments_too_large', 413, false],
    ['upload_url_invalid', 403, false],
    ['upload_url_expired', 410, false],
    ['upload_already_used', 409, false],
    ['upload_size_mismatch', 422, false],
    ['upload_digest_mismatch', 422, false],
    ['upload_incomplete', 409, false],
    // §19 federation and mesh
    ['provider_not_trusted', 403, false],
    ['key_mismatch', 403, false],
    ['recipient_not_found', 404, false],
    ['replay_detected', 409, false],
  ];
  it.each([...SPEC, ...EXTENSIONS])('%s -> %d, retry %s', (code, status, retry) => {
    expect([(ERROR_CATALOG as Any)[code]?.status, (ERROR_CATALOG as Any)[code]?.retry]).toEqual([status, retry]);
  });
  it('catalog holds exactly the spec codes and the extensions', () => {
    expect(Object.keys(ERROR_CATALOG).sort()).toEqual([...SPEC, ...EXTENSIONS].map(([c]) => c).sort());
  });
  it('WS 4003 for unauthorized and agent_suspended (§21)', () => {
    expect([ERROR_CATALOG.unauthorized.wsClose, ERROR_CATALOG.agent_suspended.wsClose]).toEqual([4003, 4003]);
  });
});

describe('newMessageId (§9)', () => {
  it('msg_<unix seconds>_<16 lowercase hex>', () => {
    const id = newMessageId(1767225600999);
    expect(id).toMatch(/^msg_1767225600_[0-9a-f]{16}$/);
    expect(id).toMatch(GENERATED_MESSAGE_ID_RE);
    expect(isGeneratedMessageId(id) && isAcceptedMessageId(id)).toBe(true);
  });
  it('random part differs between calls; default clock is now', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newMessageId()));
    expect(ids.size).toBe(50);
    const secs = Number(newMessageId().split('_')[1]);
    expect(Math.abs(secs - Date.now() / 1000)).toBeLessThan(5);
  });
});

describe('shouldReconnect (§17.7)', () => {
  it.each([
    [1000, false],
    [1001, true],
    [1006, true],
    [1011, true],
    [1009, false],
    [4001, false],
    [4002, false],
    [4003, false],
    [4009, false],
    [4500, true],
    [4501, true],
    [4502, true],
    [4503, true],
  ])('close %d -> %s', (code, expected) => expect(shouldReconnect(code)).toBe(expected));
});
