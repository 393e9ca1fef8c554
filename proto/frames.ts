// WebSocket frames (spec §17.2, §17.3): decoding what clients send, building what the server sends.
// Text frames are JSON; binary frames are MessagePack maps restricted to JSON-like values (§17.8).

import { AmpError, invalidField } from './errors.js';
import { MAX_BATCH_ACK_IDS } from './limits.js';
import { isAcceptedMessageId } from './ids.js';
import { MAX_JSON_DEPTH, parseJsonBody } from './json.js';

export const WS_PATHS = ['/v1/ws', '/api/v1/ws'] as const;
export const SUBPROTOCOL_JSON = 'amp.v1';
export const SUBPROTOCOL_MSGPACK = 'amp.v1+msgpack';
export const SUBPROTOCOLS = [SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK] as const;
export type Subprotocol = (typeof SUBPROTOCOLS)[number];

const REQUEST_ID_RE = /^.{1,64}$/su;

export type ClientFrame =
  | { type: 'auth'; token: string; request_id?: string }
  | { type: 'auth'; address: string; timestamp: string; signature: string; request_id?: string }
  | { type: 'ping'; request_id?: string }
  | { type: 'route'; request_id?: string; data: Record<string, unknown> }
  | { type: 'ack'; request_id?: string; ids: string[]; single: boolean };

/** The first acceptable subprotocol in the client's offer, or null (JSON, no header). */
export function pickSubprotocol(offered: string): Subprotocol | null {
  for (const p of offered.split(',')) {
    const name = p.trim();
    if ((SUBPROTOCOLS as readonly string[]).includes(name)) return name as Subprotocol;
  }
  return null;
}

/** A decoded frame value must be a JSON-like tree; MessagePack can carry more (§17.8). */
export function isJsonLike(v: unknown, depth = 0): boolean {
  if (depth > MAX_JSON_DEPTH) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v));
  if (Array.isArray(v)) return v.every((x) => isJsonLike(x, depth + 1));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v as object).every((x) => isJsonLike(x, depth + 1));
  }
  return false;
}

/** Parse a text frame into an object, or throw `invalid_request`. */
export function parseTextFrame(text: string): Record<string, unknown> {
  const r = parseJsonBody(text);
  if (!r.ok)
    throw new AmpError(
      'invalid_request',
      r.tooDeep ? `Frame refused: ${r.error}` : `Frame is not valid JSON: ${r.error}`,
    );
  if (r.value === null || typeof r.value !== 'object' || Array.isArray(r.value))
    throw new AmpError('invalid_request', 'Frame must be a JSON object');
  return r.value as Record<string, unknown>;
}

const MSGPACK_TYPES_ERROR =
  'Binary frame may hold only string-keyed maps, arrays, strings, booleans, nil, safe integers and floats';

/**
 * Turn a decoded MessagePack value (maps decoded as `Map`) into a JSON value, refusing what JSON
 * cannot hold: non-string map keys, binary, extension types, unsafe integers, deep nesting.
 */
export function msgpackToJson(v: unknown, depth = 1): unknown {
  if (depth > MAX_JSON_DEPTH) throw new AmpError('invalid_request', `Frame nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new AmpError('invalid_request', MSGPACK_TYPES_ERROR);
      // defineProperty keeps a `__proto__` key an ordinary own property.
      Object.defineProperty(out, k, {
        value: msgpackToJson(x, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  if (Array.isArray(v)) return v.map((x) => msgpackToJson(x, depth + 1));
  if (!isJsonLike(v) || (v !== null && typeof v === 'object'))
    throw new AmpError('invalid_request', MSGPACK_TYPES_ERROR);
  return v;
}

/** Check a decoded MessagePack frame (maps as `Map`) and return it as a JSON object. */
export function checkBinaryFrame(value: unknown): Record<string, unknown> {
  if (!(value instanceof Map)) throw new AmpError('invalid_request', 'Binary frame must be one MessagePack map');
  return msgpackToJson(value) as Record<string, unknown>;
}

/** A client's request_id, when it is one we may echo (1-64 characters). */
export function echoableRequestId(v: unknown): string | undefined {
  return typeof v === 'string' && REQUEST_ID_RE.test(v) ? v : undefined;
}

function requestId(f: Record<string, unknown>): string | undefined {
  const id = f.request_id;
  if (id === undefined || id === null) return undefined;
  if (typeof id !== 'string' || !REQUEST_ID_RE.test(id))
    throw invalidField('request_id', 'request_id must be a string of 1-64 characters');
  return id;
}

/** Decode a client frame object. Unknown types and malformed frames throw `invalid_request`/`invalid_field`. */
export function decodeClientFrame(f: Record<string, unknown>): ClientFrame {
  const type = f.type;
  if (typeof type !== 'string') throw new AmpError('invalid_request', "Frame has no string 'type'");
  const request_id = requestId(f);
  switch (type) {
    case 'auth': {
      if (typeof f.token === 'string' && f.token !== '') return { type, token: f.token, request_id };
      if (
        typeof f.address === 'string' &&
        typeof f.signature === 'string' &&
        (typeof f.timestamp === 'string' || typeof f.timestamp === 'number')
      ) {
        const ts = String(f.timestamp);
        if (!/^[0-9]{1,12}$/.test(ts)) throw invalidField('timestamp', 'timestamp must be unix seconds');
        return { type, address: f.address, timestamp: ts, signature: f.signature, request_id };
      }
      throw new AmpError('invalid_request', "auth frame needs 'token', or 'address', 'timestamp' and 'signature'");
    }
    case 'ping':
      return { type, request_id };
    case 'route': {
      const data = f.data;
      if (data === null || typeof data !== 'object' || Array.isArray(data))
        throw new AmpError('invalid_request', "route frame needs a 'data' object");
      return { type, request_id, data: data as Record<string, unknown> };
    }
    case 'ack':
    case 'message.ack': {
      if (f.ids !== undefined) {
        if (!Array.isArray(f.ids) || f.ids.length === 0) throw invalidField('ids', 'ids must be a non-empty array');
        if (f.ids.length > MAX_BATCH_ACK_IDS) throw invalidField('ids', `at most ${MAX_BATCH_ACK_IDS} ids per ack`);
        for (const id of f.ids)
          if (!isAcceptedMessageId(id))
            throw invalidField('ids', `'${String(id).slice(0, 64)}' is not a valid message id`);
        return { type: 'ack', request_id, ids: f.ids as string[], single: false };
      }
      if (!isAcceptedMessageId(f.id)) throw invalidField('id', 'ack needs a valid message id in id (or ids)');
      return { type: 'ack', request_id, ids: [f.id], single: true };
    }
    default:
      throw new AmpError('invalid_request', `Unknown frame type '${type.slice(0, 64)}'`);
  }
}

/** The flat `error` frame of an AmpError (§17.2). */
export function errorFrame(e: AmpError, request_id?: string): Record<string, unknown> {
  const frame: Record<string, unknown> = { type: 'error', error: e.code, message: e.message };
  if (request_id !== undefined) frame.request_id = request_id;
  if (e.field !== undefined) frame.field = e.field;
  if (Object.keys(e.details).length > 0) frame.details = e.details;
  // As the REST body (§21): a retryable refusal (`queue_full`, `rate_limited`) says when.
  if (e.retryAfter !== undefined) frame.retry_after = e.retryAfter;
  return frame;
}
