// Canonical JSON, payload hash and the v1.1 signing string (spec §10).
//
// Canonical JSON sorts object members by Unicode code point at every level, keeps arrays in order,
// writes strings and numbers exactly as JSON.stringify does, and keeps nulls. Two traps make a
// plain JSON.stringify of a rebuilt object wrong: JavaScript enumerates integer-like keys first,
// and Array.prototype.sort compares UTF-16 code units. So the string is built here by hand.

import { createHash } from 'node:crypto';

/** Compare two strings by Unicode code point (not UTF-16 unit). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Both in the BMP outside the surrogate range, or both surrogates: unit order is code-point order.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x - y;
    // A surrogate (code point >= U+10000) sorts after any non-surrogate unit.
    return xs ? 1 : -1;
  }
  return a.length - b.length;
}

/** Canonical (sorted, compact) JSON text of a JSON value. */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot hold non-finite numbers');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort(compareCodePoints);
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) out += ',';
        out += JSON.stringify(keys[i]) + ':' + canonicalJson(obj[keys[i]]);
      }
      return out + '}';
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

/** Padded standard base64 of SHA-256 over the UTF-8 canonical JSON of the payload. */
export function payloadHash(payload: unknown): string {
  return createHash('sha256').update(canonicalJson(payload), 'utf8').digest('base64');
}

export interface SigningFields {
  from: string;
  to: string;
  subject: string;
  priority?: string | null;
  in_reply_to?: string | null;
  payload_hash: string;
}

/** `{from}|{to}|{subject}|{priority}|{in_reply_to}|{payload_hash}`; verifiers rebuild, never parse. */
export function canonicalString(f: SigningFields): string {
  const priority = f.priority == null || f.priority === '' ? 'normal' : f.priority;
  const inReplyTo = f.in_reply_to == null ? '' : f.in_reply_to;
  return `${f.from}|${f.to}|${f.subject}|${priority}|${inReplyTo}|${f.payload_hash}`;
}

/** Signing input of a signed WebSocket session (§17.1). */
export function wsAuthString(timestamp: string, address: string): string {
  return `amp-ws-auth\n${timestamp}\n${address}`;
}

/** Signing input of a key-recovery proof at registration (§4.3). */
export function registerProofString(timestamp: string, address: string): string {
  return `amp-register\n${timestamp}\n${address}`;
}
