// The provider's own Ed25519 key: created on first start in the data dir, advertised in discovery,
// used later to sign federation and mesh traffic. The private key file is 0600.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePublicKeyPem, type ParsedPublicKey } from './keys.js';

export interface ProviderKey {
  privatePem: string;
  publicKey: ParsedPublicKey;
}

/** The provider's private key in the data dir. */
export const PROVIDER_KEY_FILE = 'provider-ed25519.pem';

export function loadOrCreateProviderKey(dataDir: string): ProviderKey {
  const path = join(dataDir, PROVIDER_KEY_FILE);
  let privatePem: string;
  if (existsSync(path)) {
    privatePem = readFileSync(path, 'utf8');
  } else {
    const { privateKey } = generateKeyPairSync('ed25519');
    privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    writeFileSync(path, privatePem, { mode: 0o600, flag: 'wx' });
  }
  const publicPem = createPublicKey(createPrivateKey(privatePem)).export({ format: 'pem', type: 'spki' }) as string;
  const publicKey = parsePublicKeyPem(publicPem);
  if (typeof publicKey === 'string') throw new Error(`provider key in ${path} is not an Ed25519 key`);
  return { privatePem, publicKey };
}

/**
 * A secret for this provider's own HMACs (signed attachment URLs), derived from its private key so
 * that it survives restarts and backups without a file of its own. `purpose` separates uses.
 */
export function derivedSecret(key: ProviderKey, purpose: string): Buffer {
  return createHash('sha256').update(`amp-relay ${purpose}\n`).update(key.privatePem).digest();
}
