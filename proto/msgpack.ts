// The one MessagePack codec (subprotocol `amp.v1+msgpack`, spec §17.8), for the server and the SDK.
// Plain maps, no record extension, so any MessagePack client reads them. Maps decode as Map so
// that non-string keys can be refused rather than silently stringified.

import { Packr } from 'msgpackr';
import { AmpError } from './errors.js';
import { checkBinaryFrame } from './frames.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });

/** Encode a frame. The result is a fresh copy: msgpackr reuses its buffer on the next pack. */
export function packFrame(frame: Record<string, unknown>): Buffer {
  return Buffer.from(packr.pack(frame));
}

/** Decode one binary frame into a plain object; anything but one map of string keys is 400. */
export function unpackFrame(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    throw new AmpError('invalid_request', 'Binary frame is not valid MessagePack');
  }
  return checkBinaryFrame(value);
}

/**
 * Decode a frame from the server (the SDK's side). Permissive: whatever the server accepted in a
 * JSON body comes back, whole integers past 2^53 and nesting that the frame's envelope takes past
 * the 64 levels allowed in client input included. Maps become plain objects.
 */
export function unpackServerFrame(bytes: Uint8Array): Record<string, unknown> {
  const value = toPlain(packr.unpack(bytes));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AmpError('invalid_request', 'Binary frame must be one MessagePack map');
  }
  return value as Record<string, unknown>;
}

function toPlain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toPlain);
  if (!(v instanceof Map)) return v;
  const out: Record<string, unknown> = {};
  // defineProperty keeps a `__proto__` key an ordinary own property.
  for (const [k, x] of v) {
    Object.defineProperty(out, String(k), { value: toPlain(x), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
