// The amp.v1+msgpack subprotocol (spec §17.8): the same frame objects as amp.v1, one MessagePack map
// per binary frame; text frames stay JSON; values JSON cannot carry are refused with
// invalid_request and the socket stays open.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs, packr, type Received, type WsClient } from '../helpers/ws.js';

const MSGPACK = 'amp.v1+msgpack';
let t: TestServer;
let jay: Registered; // amp.v1
let em: Registered; // amp.v1+msgpack
let J: WsClient;
let M: WsClient;
let J2: WsClient; // a second session of jay, on msgpack

beforeAll(async () => {
  t = await startTestServer();
  jay = await register(t.api, 'jay', 'acme');
  em = await register(t.api, 'em', 'acme');
  J = await connectWs(t.server.wsUrl, jay.api_key, { protocols: ['amp.v1'] });
  M = await connectWs(t.server.wsUrl, em.api_key, { protocols: [MSGPACK] });
  J2 = await connectWs(t.server.wsUrl, jay.api_key, { protocols: [MSGPACK] });
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

const payload = {
  type: 'request',
  message: 'héllo ✓ 𝄞 "quoted" \\ \n tab\t',
  context: {
    zero: 0,
    neg: -42,
    max_safe: 2 ** 53 - 1,
    min_safe: -(2 ** 53 - 1),
    half: 1.5,
    tiny: 1e-300,
    pi: Math.PI,
    yes: true,
    no: false,
    nil: null,
    empty: '',
    list: [1, 'a', [], {}, [null, [true]]],
    nested: { deep: { x: 'y', '10': 1, '9': 2 } },
  },
};

const nextEntry = (c: WsClient, pred: (f: any) => boolean): Promise<Received> => c.frames.nextEntry(pred, 5000);
const isPlainMap = (v: unknown) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

describe('amp.v1+msgpack', () => {
  it('negotiates msgpack and writes connected as a binary map', () => {
    expect(M.ws.protocol).toBe(MSGPACK);
    expect(J.ws.protocol).toBe('amp.v1');
    const first = M.frames.all[0]!;
    expect(first.binary).toBe(true);
    expect(isPlainMap(first.data)).toBe(true);
    expect(first.data.data).toMatchObject({ address: em.address, subprotocol: MSGPACK, agent_id: em.agent_id });
    expect(J.frames.all[0]!.binary).toBe(false);
    expect(J.frames.all[0]!.data.data.subprotocol).toBe('amp.v1');
  });

  it('a binary route frame is routed; message.new is the same object on JSON and msgpack sessions', async () => {
    M.sendBinary({ type: 'route', request_id: 'mp-1', data: { to: 'jay', subject: 'Same', payload } });
    const res = await nextEntry(M, (f) => f?.type === 'route.result' && f.request_id === 'mp-1');
    expect(res.binary).toBe(true);
    expect(isPlainMap(res.data)).toBe(true);
    expect(res.data).toEqual({
      type: 'route.result',
      request_id: 'mp-1',
      data: {
        id: expect.stringMatching(/^msg_\d+_[0-9a-f]{16}$/),
        status: 'delivered',
        method: 'websocket',
        delivered_at: expect.any(String),
        thread_id: res.data.data.id,
      },
    });
    const id = res.data.data.id as string;
    const onJson = await nextEntry(J, (f) => f?.type === 'message.new' && f.data?.id === id);
    const onMsgpack = await nextEntry(J2, (f) => f?.type === 'message.new' && f.data?.id === id);
    expect(onJson.binary).toBe(false);
    expect(onMsgpack.binary).toBe(true);
    expect(onMsgpack.data).toEqual(onJson.data);
    expect(onJson.data.data.payload).toEqual(payload);
    expect(onJson.data.data.envelope).toMatchObject({ from: em.address, to: jay.address, subject: 'Same' });
    // ... and the same as the §15 list item over REST.
    const list = await call('GET', `${t.api}/messages/pending?limit=100`, { key: jay.api_key });
    expect(list.body.messages.find((m: any) => m.id === id)).toEqual(onJson.data.data);
  });

  it('the same message routed to a JSON agent and a msgpack agent decodes to equal objects (except ids)', async () => {
    const ids: string[] = [];
    for (const to of ['jay', 'em']) {
      M.sendBinary({
        type: 'route',
        request_id: `both-${to}`,
        data: { to, subject: 'Twice', priority: 'high', payload },
      });
      ids.push((await M.nextType('route.result', `both-${to}`)).data.id);
    }
    const j = await nextEntry(J, (f) => f?.type === 'message.new' && f.data?.id === ids[0]);
    const m = await nextEntry(M, (f) => f?.type === 'message.new' && f.data?.id === ids[1]);
    expect([j.binary, m.binary]).toEqual([false, true]);
    const strip = (d: any) => {
      const { id: _id, queued_at: _q, expires_at: _e, ...rest } = d;
      const { id: _i, to: _t, timestamp: _ts, thread_id: _th, ...env } = d.envelope;
      return { ...rest, envelope: env };
    };
    expect(strip(m.data.data)).toEqual(strip(j.data.data));
    expect(Object.keys(m.data.data).sort()).toEqual(Object.keys(j.data.data).sort());
    expect(m.data.data.envelope.to).toBe(em.address);
  });

  it('ack.result comes as a msgpack map; a binary ack removes the message', async () => {
    M.sendBinary({
      type: 'route',
      request_id: 'for-ack',
      data: { to: 'em', subject: 'ack me', payload: { type: 'notification', message: 'x' } },
    });
    const id = (await M.nextType('route.result', 'for-ack')).data.id as string;
    await M.next((f) => f?.type === 'message.new' && f.data?.id === id);
    M.sendBinary({ type: 'ack', ids: [id, 'msg_1767225600_0000000000000000'], request_id: 'a1' });
    const res = await nextEntry(M, (f) => f?.type === 'ack.result');
    expect(res.binary).toBe(true);
    expect(isPlainMap(res.data)).toBe(true);
    expect(res.data).toEqual({ type: 'ack.result', request_id: 'a1', data: { acknowledged: 1 } });
    const list = await call('GET', `${t.api}/messages/pending?limit=100`, { key: em.api_key });
    expect(list.body.messages.map((m: any) => m.id)).not.toContain(id);
  });

  it('text JSON frames are still accepted on a msgpack session; answers come as msgpack', async () => {
    M.sendText({ type: 'ping', request_id: 'text-ping' });
    const pong = await nextEntry(M, (f) => f?.type === 'pong' && f.request_id === 'text-ping');
    expect(pong.binary).toBe(true);
    expect(Date.parse(pong.data.timestamp)).not.toBeNaN();
    M.sendText({
      type: 'route',
      request_id: 'text-route',
      data: { to: 'jay', subject: 'via text', payload: { type: 'notification', message: 't' } },
    });
    const r = await nextEntry(M, (f) => f?.type === 'route.result' && f.request_id === 'text-route');
    expect(r.binary).toBe(true);
    expect(r.data.data.id).toMatch(/^msg_/);
  });

  it('binary frames are msgpack on a JSON session too (§17.8), answered in JSON', async () => {
    J.sendBinary({ type: 'ping', request_id: 'bin-on-json' });
    const pong = await nextEntry(J, (f) => f?.type === 'pong' && f.request_id === 'bin-on-json');
    expect(pong.binary).toBe(false);
  });

  // fixmap(2) {"type": "ping", <key>: <value>} built by hand, for encodings msgpackr would not emit.
  const rawMap = (...kv: Buffer[]) =>
    Buffer.concat([Buffer.from([0x82, 0xa4]), Buffer.from('type'), Buffer.from([0xa4]), Buffer.from('ping'), ...kv]);
  const key = (k: string) => Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k)]);

  it.each<[string, () => Buffer]>([
    ['a map holding a binary value', () => packr.pack({ type: 'ping', blob: Buffer.from([1, 2, 3]) })],
    ['a timestamp extension (Date)', () => packr.pack({ type: 'ping', when: new Date() })],
    ['an unknown extension type', () => rawMap(key('x'), Buffer.from([0xd5, 0x05, 0x61, 0x62]))],
    ['an integer beyond 2^53', () => packr.pack({ type: 'ping', n: 2n ** 60n })],
    ['an integer map key', () => rawMap(Buffer.from([0x01, 0xa1, 0x78]))],
    ['a top-level array', () => packr.pack([{ type: 'ping' }])],
    ['a top-level string', () => packr.pack('ping')],
    ['a top-level integer', () => packr.pack(42)],
    ['a top-level nil', () => packr.pack(null)],
    ['a top-level binary', () => packr.pack(Buffer.from('{"type":"ping"}'))],
    ['bytes that are not msgpack (0xc1)', () => Buffer.from([0xc1])],
    ['a truncated map', () => packr.pack({ type: 'ping', request_id: 'abc' }).subarray(0, 8)],
  ])('refuses %s with invalid_request; the socket stays open', async (_label, make) => {
    const marker = `after-${_label.replace(/\W+/g, '-')}`.slice(0, 64);
    M.sendBinary(make());
    const err = await nextEntry(M, (f) => f?.type === 'error' || f?.type === 'pong');
    expect(err.binary).toBe(true);
    expect(err.data).toMatchObject({ type: 'error', error: 'invalid_request' });
    expect(typeof err.data.message).toBe('string');
    M.sendBinary({ type: 'ping', request_id: marker });
    await M.nextType('pong', marker);
    expect(M.ws.readyState).toBe(M.ws.OPEN);
  });
});
