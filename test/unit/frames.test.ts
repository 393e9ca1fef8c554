// WebSocket frame decoding (spec §17.3, §17.5, §17.8): pure, table-driven.
import { describe, expect, it } from 'vitest';
import {
  AmpError,
  checkBinaryFrame,
  decodeClientFrame,
  errorFrame,
  isJsonLike,
  parseTextFrame,
  pickSubprotocol,
} from '../../proto/index.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof AmpError ? [e.code, e.field] : ['not an AmpError'];
  }
  return ['no error'];
};

describe('pickSubprotocol', () => {
  it.each([
    ['amp.v1', 'amp.v1'],
    ['amp.v1+msgpack', 'amp.v1+msgpack'],
    ['foo, amp.v1+msgpack, amp.v1', 'amp.v1+msgpack'],
    ['foo,bar', null],
    ['', null],
  ])('%j -> %j', (offer, want) => expect(pickSubprotocol(offer)).toBe(want));
});

describe('decodeClientFrame', () => {
  it.each([
    [
      { type: 'auth', token: 'k' },
      { type: 'auth', token: 'k', request_id: undefined },
    ],
    [
      { type: 'auth', address: 'a@t.x.y', timestamp: 1767225600, signature: 's' },
      { type: 'auth', address: 'a@t.x.y', timestamp: '1767225600', signature: 's', request_id: undefined },
    ],
    [
      { type: 'auth', address: 'a@t.x.y', timestamp: '0017', signature: 's' },
      { type: 'auth', address: 'a@t.x.y', timestamp: '0017', signature: 's', request_id: undefined },
    ],
    [
      { type: 'ping', request_id: 'p1' },
      { type: 'ping', request_id: 'p1' },
    ],
    [
      { type: 'route', data: { to: 'b' }, extra: 1 },
      { type: 'route', request_id: undefined, data: { to: 'b' } },
    ],
    [
      { type: 'ack', id: 'msg_1_a' },
      { type: 'ack', request_id: undefined, ids: ['msg_1_a'], single: true },
    ],
    [
      { type: 'message.ack', id: 'msg-1-A' },
      { type: 'ack', request_id: undefined, ids: ['msg-1-A'], single: true },
    ],
    [
      { type: 'ack', ids: ['msg_1_a', 'msg_2_b'], request_id: 'a1' },
      { type: 'ack', request_id: 'a1', ids: ['msg_1_a', 'msg_2_b'], single: false },
    ],
  ])('decodes %j', (frame, want) => expect(decodeClientFrame(frame)).toEqual(want));

  it.each([
    [{}, 'invalid_request', undefined],
    [{ type: 7 }, 'invalid_request', undefined],
    [{ type: 'subscribe' }, 'invalid_request', undefined],
    [{ type: 'auth' }, 'invalid_request', undefined],
    [{ type: 'auth', address: 'a', timestamp: 'soon', signature: 's' }, 'invalid_field', 'timestamp'],
    [{ type: 'route' }, 'invalid_request', undefined],
    [{ type: 'route', data: [1] }, 'invalid_request', undefined],
    [{ type: 'ack' }, 'invalid_field', 'id'],
    [{ type: 'ack', id: '../../etc/passwd' }, 'invalid_field', 'id'],
    [{ type: 'ack', ids: [] }, 'invalid_field', 'ids'],
    [{ type: 'ack', ids: Array(1001).fill('msg_1_a') }, 'invalid_field', 'ids'],
    [{ type: 'ack', ids: ['msg_1_a', 'nope'] }, 'invalid_field', 'ids'],
    [{ type: 'ping', request_id: 5 }, 'invalid_field', 'request_id'],
    [{ type: 'ping', request_id: 'x'.repeat(65) }, 'invalid_field', 'request_id'],
  ])('refuses %j with %s', (frame, code, field) =>
    expect(codeOf(() => decodeClientFrame(frame as Record<string, unknown>))).toEqual([code, field]),
  );
});

describe('frame bodies', () => {
  it('parses text frames as JSON objects only', () => {
    expect(parseTextFrame('{"type":"ping"}')).toEqual({ type: 'ping' });
    expect(codeOf(() => parseTextFrame('[1]'))).toEqual(['invalid_request', undefined]);
    expect(codeOf(() => parseTextFrame('nope'))).toEqual(['invalid_request', undefined]);
    expect(codeOf(() => parseTextFrame('['.repeat(100) + ']'.repeat(100)))).toEqual(['invalid_request', undefined]);
  });

  it.each([
    [{ a: [1, 'x', null, true, 1.5, { b: 9007199254740991 }] }, true],
    [{ a: Buffer.from('x') }, false],
    [{ a: new Date(0) }, false],
    [{ a: 2 ** 60 }, false],
    [{ a: 10n }, false],
    [{ a: new Map() }, false],
    [{ a: Number.NaN }, false],
  ])('isJsonLike(%o) = %s', (v, want) => expect(isJsonLike(v)).toBe(want));

  it('turns a decoded MessagePack map into a JSON object', () => {
    const frame = new Map<unknown, unknown>([
      ['type', 'route'],
      [
        'data',
        new Map<unknown, unknown>([
          ['to', 'b'],
          ['list', [1, new Map([['k', null]])]],
        ]),
      ],
    ]);
    expect(checkBinaryFrame(frame)).toEqual({ type: 'route', data: { to: 'b', list: [1, { k: null }] } });
    const proto = checkBinaryFrame(new Map([['__proto__', 'x']]));
    expect(Object.keys(proto)).toEqual(['__proto__']);
  });

  it.each([
    ['a plain object (not decoded as a map)', { type: 'ping' }],
    ['an array', [1]],
    ['a string', 'x'],
    ['nil', null],
    [
      'an integer key',
      new Map<unknown, unknown>([
        ['type', 'ping'],
        [1, 'x'],
      ]),
    ],
    ['binary', new Map<unknown, unknown>([['a', Buffer.from('x')]])],
    ['a timestamp', new Map<unknown, unknown>([['a', new Date(0)]])],
    ['an unsafe integer', new Map<unknown, unknown>([['a', 2 ** 60]])],
    ['a nested integer key', new Map<unknown, unknown>([['a', new Map([[2, 'x']])]])],
  ])('refuses a binary frame holding %s', (_label, bad) => {
    expect(codeOf(() => checkBinaryFrame(bad))).toEqual(['invalid_request', undefined]);
  });

  it('builds flat error frames', () => {
    const e = new AmpError('not_found', 'Agent not found', { field: 'to', details: { address: 'x' } });
    expect(errorFrame(e, 'r1')).toEqual({
      type: 'error',
      error: 'not_found',
      message: 'Agent not found',
      request_id: 'r1',
      field: 'to',
      details: { address: 'x' },
    });
    expect(errorFrame(new AmpError('invalid_request', 'bad'))).toEqual({
      type: 'error',
      error: 'invalid_request',
      message: 'bad',
    });
  });
});
