// Fuzz-style robustness of one authenticated WebSocket session (spec §17.3, §17.6, §17.7, §21):
// ~500 seeded random frames (reproducible: AMP_FUZZ_SEED), then checks that the server stayed
// healthy, every error answer is a well-formed catalog error, an independent session saw nothing of
// it, and the fuzzed session still works. Plus the frame size limit (1009) and invalid UTF-8.

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs, packr, type Received, type WsClient } from '../helpers/ws.js';

const SEED = Number(process.env.AMP_FUZZ_SEED ?? 0x5eed_a11c);
const FRAMES = 500;
const TIME_BUDGET_MS = 20_000;
const MAX_FRAME = 1_114_112;
/** The §21 core catalog. */
const CATALOG = new Set([
  'invalid_request',
  'missing_field',
  'invalid_field',
  'timestamp_future',
  'unauthorized',
  'forbidden',
  'tenant_access_denied',
  'agent_suspended',
  'recipient_suspended',
  'key_revoked',
  'signature_invalid',
  'not_found',
  'method_not_allowed',
  'name_taken',
  'key_already_registered',
  'duplicate_idempotency_key',
  'request_too_large',
  'payload_too_large',
  'external_provider',
  'signature_missing',
  'attachments_not_supported',
  'queue_full',
  'rate_limited',
  'internal_error',
  'service_unavailable',
]);
const ERROR_KEYS = new Set(['type', 'error', 'message', 'request_id', 'field', 'details', 'retry_after']);

let t: TestServer;
let fuzzer: Registered;
let bystander: Registered;
let F: WsClient; // the fuzzed session
let B: WsClient; // an independent agent's session
const healthStatus = async () => (await call('GET', `${t.api}/health`)).status;

beforeAll(async () => {
  t = await startTestServer();
  fuzzer = await register(t.api, 'fuzzer', 'acme');
  bystander = await register(t.api, 'quiet-bystander', 'acme');
  F = await connectWs(t.server.wsUrl, fuzzer.api_key);
  B = await connectWs(t.server.wsUrl, bystander.api_key);
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

// --- seeded generators ---

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
function str(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rnd();
    s +=
      r < 0.6
        ? String.fromCharCode(32 + int(95))
        : r < 0.8
          ? String.fromCharCode(int(32))
          : String.fromCodePoint(pick([0xe9, 0x2713, 0x1d11e, 0xfeff, 0x202e, 0xfffd]));
  }
  return s;
}
function junk(depth: number): unknown {
  const r = int(depth > 0 ? 8 : 5);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rnd() < 0.5;
    case 2:
      return pick([0, -1, 1e308, -1e-308, 2 ** 53 + 2, 3.14, -0]);
    case 3:
      return str(int(40));
    case 4:
      return pick(['', '../../x', '__proto__', 'msg_1_x', '%00', '\u0000', 'bob', '{}']);
    case 5:
      return Array.from({ length: int(5) }, () => junk(depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: int(5) }, () => [
          pick(['type', 'to', 'data', 'id', 'ids', '__proto__', 'constructor', str(8)]),
          junk(depth - 1),
        ]),
      );
  }
}
const badIds = [
  '../../x',
  '',
  'msg_',
  'msg_../../etc',
  'MSG_1_ABC',
  'x'.repeat(300),
  ' msg_1767225600_9f8e7d6c5b4a3921',
  '\u0000',
  'msg_1767225600_9f8e7d6c5b4a392g',
];
const badRequestIds: unknown[] = [0, 1.5, true, {}, [], ['r'], '', 'r'.repeat(65), '𝄞'.repeat(65)];
const nest = (depth: number, open: string, close: string, inner = '0') =>
  open.repeat(depth) + inner + close.repeat(depth);

interface Fuzz {
  kind: string;
  binary: boolean;
  data: Buffer | string;
  /** request_id sent, when it is a string (the server may echo it, even when invalid). */
  rid?: string;
}
const ridOf = (v: unknown) =>
  v && typeof v === 'object' && typeof (v as any).request_id === 'string'
    ? ((v as any).request_id as string)
    : undefined;
function frame(): Fuzz {
  const text = (kind: string, v: unknown): Fuzz => ({
    kind,
    binary: false,
    data: typeof v === 'string' ? v : JSON.stringify(v),
    rid: ridOf(v),
  });
  const bin = (kind: string, v: unknown): Fuzz => ({
    kind,
    binary: true,
    data: Buffer.isBuffer(v) ? v : packr.pack(v),
    rid: ridOf(v),
  });
  switch (int(16)) {
    case 0:
      return bin('random bytes (binary)', bytes(1 + int(512)));
    case 1:
      return text('random text', str(1 + int(512)));
    case 2:
      return text(
        'json array',
        Array.from({ length: int(6) }, () => junk(3)),
      );
    case 3:
      return text('json scalar', pick([42, -1, 'ping', null, true, Number.POSITIVE_INFINITY, '{"type":"ping"}']));
    case 4:
      return text('nested junk', junk(6));
    case 5:
      return text('huge string', {
        type: pick(['ping', 'route', 'nope', 'ack']),
        blob: 'x'.repeat(1 + int(100_000)),
        request_id: `h${int(1e6)}`,
      });
    case 6:
      return text('huge type', { type: 'y'.repeat(1 + int(100_000)) });
    case 7:
      return text('unknown type', {
        type: pick([
          'subscribe',
          'PING',
          'route.result',
          'connected',
          'message.new',
          'error',
          'pong',
          '',
          '__proto__',
          'constructor',
          'toString',
          'ack.result',
        ]),
        request_id: `u${int(1e6)}`,
      });
    case 8:
      return text('route garbage', {
        type: 'route',
        request_id: rnd() < 0.5 ? `r${int(1e6)}` : undefined,
        data: rnd() < 0.3 ? junk(3) : { to: junk(1), subject: junk(1), payload: junk(3), priority: junk(0) },
      });
    case 9:
      return text(
        'ack bad id',
        rnd() < 0.5
          ? { type: pick(['ack', 'message.ack']), id: pick(badIds) }
          : {
              type: 'ack',
              ids: rnd() < 0.2 ? Array(1001).fill('msg_1767225600_9f8e7d6c5b4a3921') : [pick(badIds), junk(0)],
              request_id: `a${int(1e6)}`,
            },
      );
    case 10:
      return text('bad request_id', {
        type: pick(['ping', 'route', 'ack', 'auth']),
        request_id: pick(badRequestIds),
        data: {},
        id: 'msg_1767225600_9f8e7d6c5b4a3921',
      });
    case 11:
      return text(
        'deep json',
        rnd() < 0.5 ? nest(10_000, '[', ']') : `{"type":"ping","x":${nest(10_000, '{"a":', '}')}}`,
      );
    case 12:
      return bin(
        'deep msgpack',
        Buffer.concat([
          Buffer.from([0x82, 0xa4]),
          Buffer.from('type'),
          Buffer.from([0xa4]),
          Buffer.from('ping'),
          Buffer.from([0xa1, 0x78]),
          Buffer.alloc(10_000, 0x91),
          Buffer.from([0xc0]),
        ]),
      );
    case 13:
      return bin(
        'msgpack junk',
        rnd() < 0.5 ? junk(4) : { type: pick(['route', 'ack', 'ping']), data: junk(3), ids: junk(1) },
      );
    case 14:
      return text('auth again', {
        type: 'auth',
        token: pick([fuzzer.api_key, 'nope', '']),
        request_id: `x${int(1e6)}`,
      });
    default:
      return text('valid ping', { type: 'ping', request_id: `p${int(1e6)}`, extra: junk(2) });
  }
}

// --- checks ---

const sentRequestIds = new Set<string>();
function wellFormedError(f: any): string | undefined {
  const why = (s: string) => `${s}: ${JSON.stringify(f).slice(0, 300)}`;
  if (!CATALOG.has(f.error)) return why('error code not in the catalog');
  if (f.error === 'internal_error') return why('internal_error (a server bug)');
  if (typeof f.message !== 'string' || f.message.length === 0 || f.message.length > 2000) return why('bad message');
  for (const k of Object.keys(f)) if (!ERROR_KEYS.has(k)) return why(`unexpected key ${k}`);
  if (f.request_id !== undefined && (typeof f.request_id !== 'string' || !sentRequestIds.has(f.request_id)))
    return why('request_id not one we sent');
  if (f.field !== undefined && typeof f.field !== 'string') return why('field not a string');
  if (f.details !== undefined && (f.details === null || typeof f.details !== 'object' || Array.isArray(f.details)))
    return why('details not an object');
  return undefined;
}

describe('fuzzing one session', () => {
  it(`survives ${FRAMES} seeded random frames (seed ${SEED})`, { timeout: 60_000 }, async () => {
    const t0 = performance.now();
    const kinds: Record<string, number> = {};
    let sent = 0;
    for (; sent < FRAMES && performance.now() - t0 < TIME_BUDGET_MS; sent++) {
      const f = frame();
      kinds[f.kind] = (kinds[f.kind] ?? 0) + 1;
      if (f.rid !== undefined) sentRequestIds.add(f.rid);
      F.ws.send(f.data, { binary: f.binary });
      if (sent % 50 === 49) {
        expect(await healthStatus()).toBe(200);
        const rid = `barrier-${sent}`;
        sentRequestIds.add(rid);
        F.sendText({ type: 'ping', request_id: rid });
        await F.nextType('pong', rid, 10_000);
      }
    }
    expect(sent).toBeGreaterThanOrEqual(FRAMES * 0.8);
    expect(Object.keys(kinds).length).toBeGreaterThanOrEqual(14);

    // The fuzzed session still works: a route goes through (and drains behind everything sent).
    F.sendText({ type: 'ping', request_id: 'after-fuzz' });
    await F.nextType('pong', 'after-fuzz', 10_000);
    sentRequestIds.add('after-fuzz').add('control');
    F.sendText({
      type: 'route',
      request_id: 'control',
      data: { to: 'quiet-bystander', subject: 'control', payload: { type: 'notification', message: 'only this one' } },
    });
    const control = await F.nextType('route.result', 'control', 10_000);
    expect(control.data?.id).toMatch(/^msg_/);
    expect(await healthStatus()).toBe(200);

    // Every answer decoded, and every error is a well-formed catalog error.
    const allowed = new Set(['connected', 'error', 'pong', 'route.result', 'ack.result', 'message.delivered']);
    const problems: string[] = [];
    for (const e of F.frames.all as Received[]) {
      if (e.raw) problems.push(`undecodable frame (${e.raw.length} bytes)`);
      else if (!allowed.has(e.data?.type))
        problems.push(`unexpected frame type ${JSON.stringify(e.data).slice(0, 200)}`);
      else if (e.data.type === 'error' || (e.data.type === 'route.result' && 'error' in e.data)) {
        const bad = wellFormedError(e.data);
        if (bad) problems.push(bad);
      }
    }
    expect(problems).toEqual([]);
    const errors = F.frames.all.filter((e) => e.data?.type === 'error').length;
    expect(errors).toBeGreaterThan(FRAMES * 0.5);
    expect(F.ws.readyState).toBe(F.ws.OPEN);

    // The bystander got its connected frame and the control message, nothing caused by the fuzzer.
    const msg = await B.nextType('message.new', undefined, 5000);
    expect(msg.data.id).toBe(control.data.id);
    B.sendText({ type: 'ping', request_id: 'bystander-done' });
    await B.nextType('pong', 'bystander-done');
    expect(B.frames.types()).toEqual(['connected', 'message.new', 'pong']);
  });
});

describe('the fuzz categories, one by one, with their documented answers', () => {
  let G: WsClient; // a fresh session, so no answer to the fuzzing above can be mistaken for these
  beforeAll(async () => {
    G = await connectWs(t.server.wsUrl, fuzzer.api_key);
  });
  const deepMsgpack = Buffer.concat([
    Buffer.from([0x81, 0xa4]),
    Buffer.from('type'),
    Buffer.alloc(10_000, 0x91),
    Buffer.from([0xc0]),
  ]);
  it.each<[string, Buffer | string | object, Record<string, unknown>, boolean?]>([
    ['JSON arrays nested 10000 deep', nest(10_000, '[', ']'), { error: 'invalid_request' }],
    [
      'JSON objects nested 10000 deep in a ping',
      `{"type":"ping","x":${nest(10_000, '{"a":', '}')}}`,
      { error: 'invalid_request' },
    ],
    ['msgpack arrays nested 10000 deep', deepMsgpack, { error: 'invalid_request' }, true],
    ['a top-level array', [], { error: 'invalid_request' }],
    ['a number', '42', { error: 'invalid_request' }],
    ['an unknown type', { type: 'subscribe' }, { error: 'invalid_request', message: "Unknown frame type 'subscribe'" }],
    ['a 100 KB type', { type: 't'.repeat(100_000) }, { error: 'invalid_request' }],
    ['ack with id ../../x', { type: 'ack', id: '../../x' }, { error: 'invalid_field' }],
    [
      'ack with ids [../../x]',
      { type: 'ack', ids: ['../../x'], request_id: 'a-bad' },
      { error: 'invalid_field', request_id: 'a-bad' },
    ],
    [
      'ack with 1001 ids',
      { type: 'ack', ids: Array(1001).fill('msg_1767225600_9f8e7d6c5b4a3921') },
      { error: 'invalid_field' },
    ],
    ['a numeric request_id', { type: 'ping', request_id: 5 }, { error: 'invalid_field', field: 'request_id' }],
    [
      'a 65-char request_id',
      { type: 'ping', request_id: 'r'.repeat(65) },
      { error: 'invalid_field', field: 'request_id' },
    ],
    [
      'route without to',
      { type: 'route', request_id: 'no-to', data: { subject: 's', payload: { type: 'notification', message: 'm' } } },
      { type: 'route.result', request_id: 'no-to', error: 'missing_field', field: 'to' },
    ],
    [
      'route with a 100 KB subject',
      {
        type: 'route',
        request_id: 'big-subj',
        data: { to: 'quiet-bystander', subject: 's'.repeat(100_000), payload: { type: 'notification', message: 'm' } },
      },
      { type: 'route.result', request_id: 'big-subj', error: 'payload_too_large' },
    ],
    [
      'route to an unknown agent',
      {
        type: 'route',
        request_id: 'nobody',
        data: { to: 'nobody', subject: 's', payload: { type: 'notification', message: 'm' } },
      },
      { type: 'route.result', request_id: 'nobody', error: 'not_found', field: 'to', message: 'Agent not found' },
    ],
    // §17.5: a route frame is answered by route.result; §12.3 step 4 puts shape errors among its checks.
    [
      'route whose data is a string, with request_id',
      { type: 'route', request_id: 'str-data', data: 'x' },
      { type: 'route.result', request_id: 'str-data', error: 'invalid_request' },
    ],
    [
      'route without data, with request_id',
      { type: 'route', request_id: 'no-data' },
      { type: 'route.result', request_id: 'no-data', error: 'invalid_request' },
    ],
    [
      'route with garbage data, no request_id',
      { type: 'route', data: { to: 7, subject: [], payload: 'x' } },
      { type: 'error', error: 'invalid_field' },
    ],
  ])('%s', async (_label, sendIt, expected, binary) => {
    G.frames.drain();
    const before = G.frames.all.length;
    if (binary) G.sendBinary(sendIt);
    else G.sendText(sendIt);
    const answer = await G.next((f) => f?.type === 'error' || f?.type === 'route.result' || f?.type === 'pong');
    expect(answer).toMatchObject({ type: 'error', ...expected });
    expect(wellFormedError({ ...answer, request_id: undefined })).toBeUndefined();
    const rid = `still-open-${before}`;
    G.sendText({ type: 'ping', request_id: rid });
    await G.nextType('pong', rid);
    expect(G.frames.all.length - before).toBe(2); // exactly one answer, then the pong
    expect(await healthStatus()).toBe(200);
  });
});

/**
 * A raw TCP WebSocket client (Bearer upgrade) that writes `bytes` after `connected` and returns what
 * the server sent afterwards until it closed the connection: the close frame's code, if any.
 */
async function rawAfterConnected(bytes: Buffer): Promise<{ closeCode?: number; tail: Buffer }> {
  const s = net.connect(Number(new URL(t.url).port), '127.0.0.1');
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.on('error', () => {}); // a reset is one way to close
  const ended = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not close the connection within 10 s')), 10_000);
    s.once('close', () => (clearTimeout(timer), resolve()));
  });
  await new Promise((resolve) => s.once('connect', resolve));
  s.write(
    `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${fuzzer.api_key}\r\n\r\n`,
  );
  // Wait for the 101 and the connected frame, then send.
  for (;;) {
    const all = Buffer.concat(chunks);
    if (all.includes('"connected"')) break;
    await new Promise(
      (resolve, reject) => (
        s.once('data', resolve), s.once('close', () => reject(new Error(`closed before connected: ${all}`)))
      ),
    );
  }
  const before = Buffer.concat(chunks).length;
  s.write(bytes);
  await ended;
  const tail = Buffer.concat(chunks).subarray(before);
  // Server frames are unmasked; a close frame is 0x88, length, 2-byte code, reason.
  const at = tail.indexOf(0x88);
  const closeCode = at >= 0 && tail.length >= at + 4 && tail[at + 1]! >= 2 ? tail.readUInt16BE(at + 2) : undefined;
  return { closeCode, tail };
}
/** One masked client frame header (+ payload when given). */
function clientFrame(opcode: number, length: number, payload?: Buffer): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const h = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length]) : Buffer.alloc(10);
  if (length >= 126) {
    h[0] = 0x80 | opcode;
    h[1] = 0x80 | 127;
    h.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([h, mask, payload ? Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)) : Buffer.alloc(0)]);
}

describe('frame limits', () => {
  // A JSON ping padded to exactly `size` bytes.
  const paddedPing = (rid: string, size: number) => {
    const head = `{"type":"ping","request_id":"${rid}","pad":"`;
    return head + 'x'.repeat(size - head.length - 2) + '"}';
  };

  it(`a frame of exactly ${MAX_FRAME} bytes is accepted; one byte more closes the socket (1009 per §17.7)`, async ({
    annotate,
  }) => {
    const c = await connectWs(t.server.wsUrl, fuzzer.api_key);
    const exact = paddedPing('exact', MAX_FRAME);
    expect(Buffer.byteLength(exact)).toBe(MAX_FRAME);
    c.sendText(exact);
    await c.nextType('pong', 'exact', 10_000);
    c.sendText(paddedPing('over', MAX_FRAME + 1));
    const info = await c.closed(10_000);
    await annotate(`oversized text frame: ws client saw close ${info.code} '${info.reason}'`);
    expect(info.code).toBe(1009);
    expect(info.reason).toBe('message_too_big');
    expect(c.frames.all.some((e) => e.data?.request_id === 'over')).toBe(false);
    expect(await healthStatus()).toBe(200);
    // The other sessions of the agent are unaffected.
    F.sendText({ type: 'ping', request_id: 'after-1009' });
    await F.nextType('pong', 'after-1009');
  });

  it('a whole frame one byte over the limit gets a close frame with 1009 (text and binary)', async () => {
    for (const opcode of [0x1, 0x2]) {
      const { closeCode } = await rawAfterConnected(
        clientFrame(opcode, MAX_FRAME + 1, Buffer.alloc(MAX_FRAME + 1, 0x20)),
      );
      expect(closeCode).toBe(1009);
      expect(await healthStatus()).toBe(200);
    }
  });

  // A text frame that is not valid UTF-8. RFC 6455 §8.1: the endpoint MUST fail the connection
  // (with 1007, §7.4.1, in the close frame it SHOULD send first); §17.3's "invalid_request, socket
  // stays open" is for frames that are UTF-8 but not a valid AMP frame. The choice is to fail the
  // connection. uWebSockets.js validates text frames itself, before the relay's message handler
  // could see one, and there is no option to turn that off (the frame never reaches JavaScript);
  // it ends the TCP connection at once without a close frame, so the 1007 close frame is the
  // upstream limit: the `ws` client reports 1006. Reproduction: after `connected`, send the masked
  // text frame 81 84 <mask> {0x7b 0xff 0xfe 0x7d}; the server writes nothing and closes. What the
  // relay does: it hears the cause from uWS's close callback, counts it in /metrics
  // (amp_ws_invalid_utf8_closes_total) and logs it; the server and other sessions carry on.
  it('a text frame that is not valid UTF-8 fails the connection (no frame; 1006 upstream), counted in /metrics', async () => {
    const invalidUtf8Closes = async () => {
      const m = /^amp_ws_invalid_utf8_closes_total (\d+)$/m.exec((await call('GET', `${t.url}/metrics`)).body);
      return m ? Number(m[1]) : Number.NaN;
    };
    const before = await invalidUtf8Closes();
    expect(before).toBeGreaterThanOrEqual(0);
    const c = await connectWs(t.server.wsUrl, fuzzer.api_key);
    c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    c.sendText({ type: 'ping', request_id: 'after-bad-utf8' });
    expect(await c.closed(5000)).toEqual({ code: 1006, reason: '' });
    // Nothing came after `connected`: no invalid_request, no pong.
    expect(c.frames.types()).toEqual(['connected']);
    expect(await healthStatus()).toBe(200);
    // On the wire: not one byte after the frame, then the end of the connection.
    const { closeCode, tail } = await rawAfterConnected(clientFrame(0x1, 4, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
    expect(closeCode).toBeUndefined();
    expect(tail.length).toBe(0);
    expect(await healthStatus()).toBe(200);
    expect(await invalidUtf8Closes()).toBe(before + 2);
    F.sendText({ type: 'ping', request_id: 'after-utf8' });
    await F.nextType('pong', 'after-utf8');
  });
});
