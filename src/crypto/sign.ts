// Ed25519 signing and key generation, for clients of the relay (the SDK's signed WebSocket auth,
// `amp-relay keygen`). The server verifies; it never signs with an agent's key.

import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/** A private key as node:crypto holds it (`createPrivateKey(pem)`). */
export type PrivateKey = KeyObject;

/** An Ed25519 private key from PKCS#8 PEM (what `amp-relay keygen` prints); throws a clear error otherwise. */
export function privateKeyFromPem(pem: string): PrivateKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new TypeError('privateKey is not a PEM private key (expected "-----BEGIN PRIVATE KEY-----")');
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new TypeError(`privateKey is a ${key.asymmetricKeyType} key; AMP signs with Ed25519`);
  return key;
}

/** The 64-byte Ed25519 signature of `data`. */
export function signEd25519(privateKey: PrivateKey, data: Buffer): Buffer {
  return sign(null, data, privateKey);
}

/** A fresh Ed25519 keypair as PEM: PKCS#8 private key, SPKI public key (each ends in a newline). */
export function generateEd25519Pem(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
  };
}
