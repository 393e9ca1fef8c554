// Keys of federation (spec §19.1): signing this provider's requests with its key (provider-key.ts),
// and reading a sender's key as a federated request gives it (PEM or 64 hex).

import { createPrivateKey, createPublicKey } from 'node:crypto';
import { type ParsedPublicKey, parsePublicKeyPem } from './keys.js';
import type { ProviderKey } from './provider-key.js';
import { signRequest } from './request-signing.js';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** `(timestamp, raw body) → base64 Ed25519 signature` over "<timestamp>.<raw body>" by the provider key. */
export function providerSigner(key: ProviderKey): (timestamp: string, rawBody: string | Uint8Array) => string {
  const privateKey = createPrivateKey(key.privatePem);
  return (timestamp, rawBody) => signRequest(privateKey, timestamp, rawBody);
}

/** An Ed25519 public key as SPKI PEM or 64 hex digits (the raw key); undefined when it is neither. */
export function parseSenderKey(text: string): ParsedPublicKey | undefined {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    const der = Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(t, 'hex')]);
    let pem: string;
    try {
      pem = createPublicKey({ key: der, format: 'der', type: 'spki' }).export({
        format: 'pem',
        type: 'spki',
      }) as string;
    } catch {
      return undefined;
    }
    const k = parsePublicKeyPem(pem);
    return typeof k === 'string' ? undefined : k;
  }
  const k = parsePublicKeyPem(t);
  return typeof k === 'string' ? undefined : k;
}
