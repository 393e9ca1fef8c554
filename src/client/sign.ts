// Message signing for SDK clients (spec §10): Ed25519 over the raw v1.1 canonical string
// `{from}|{to}|{subject}|{priority}|{in_reply_to}|{payload_hash}`, standard base64. A client built
// with its private key signs every route through signRoute; signMessage is the same for callers
// that build their own requests.

import { canonicalString, payloadHash } from '../../proto/index.js';
import { generateEd25519Pem, type PrivateKey, privateKeyFromPem, signEd25519 } from '../crypto/sign.js';
import type { RouteBody } from './api-error.js';

export type { PrivateKey };

/** An Ed25519 private key: PKCS#8 PEM text (what `amp-relay keygen` prints) or a node:crypto KeyObject. */
export type PrivateKeyInput = string | PrivateKey;

/** The signed fields of a message; `priority` absent means `normal`, `in_reply_to` absent means "". */
export interface SignedFields {
  from: string;
  to: string;
  subject: string;
  priority?: string | null;
  in_reply_to?: string | null;
  payload: unknown;
}

/** A flat message, or the envelope form `{ envelope, payload }`. */
export type Signable = SignedFields | { envelope: Omit<SignedFields, 'payload'>; payload: unknown };

/** A KeyObject for a PEM string (checked to be Ed25519); a KeyObject is returned as is. */
export function toPrivateKey(key: PrivateKeyInput): PrivateKey {
  return typeof key === 'string' ? privateKeyFromPem(key) : key;
}

/**
 * The value as JSON carries it: what `JSON.stringify` puts on the wire (a `Date` as its string,
 * `undefined` members dropped, `undefined` array items null). The signature must cover exactly that.
 */
export function asSent<T>(value: T): T {
  return value === undefined ? value : JSON.parse(JSON.stringify(value));
}

/**
 * The base64 Ed25519 signature of a message (spec §10), for its `signature` field. The payload is
 * hashed as `JSON.stringify` sends it (see asSent), so send the message with JSON.stringify.
 */
export function signMessage(message: Signable, privateKey: PrivateKeyInput): string {
  const m = 'envelope' in message ? { ...message.envelope, payload: message.payload } : message;
  const f = { ...m, payload: asSent(m.payload) };
  const text = canonicalString({
    from: f.from,
    to: f.to,
    subject: f.subject,
    priority: f.priority,
    in_reply_to: f.in_reply_to,
    payload_hash: payloadHash(f.payload),
  });
  return signEd25519(toPrivateKey(privateKey), Buffer.from(text, 'utf8')).toString('base64');
}

/**
 * The route body to send, with its signature, sent as `from` (a body that carries a signature is
 * kept as is). The body is first made what JSON sends (asSent): the signed fields are the sent ones.
 */
export function signRoute(body: RouteBody, from: string, privateKey: PrivateKey): RouteBody {
  if (body.signature !== undefined) return body;
  const sent = asSent(body);
  return { ...sent, signature: signMessage({ ...sent, from: sent.from ?? from }, privateKey) };
}

/** A fresh Ed25519 keypair as PEM: `privatePem` (PKCS#8, keep it secret) and `publicPem` (SPKI, to register). */
export function generateKeyPair(): { privatePem: string; publicPem: string } {
  return generateEd25519Pem();
}
