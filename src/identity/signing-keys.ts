// The platform's token-signing key set (spec agent-identity §7): created on first start in the
// data dir, RS256 (RSA 2048) by default or EdDSA (Ed25519), `kid` = RFC 7638 thumbprint. The only
// module family that imports jose is src/identity/.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';

export type JwtAlg = 'RS256' | 'EdDSA';

const FILE = 'aid-signing-keys.json';

interface StoredKey {
  kid: string;
  alg: JwtAlg;
  created_at: number;
  /** Private JWK (includes the public members). */
  jwk: JWK;
}

export interface SigningKey {
  kid: string;
  alg: JwtAlg;
  privateKey: Awaited<ReturnType<typeof importJWK>>;
  publicJwk: JWK;
}

/** Public members only, for the JWKS. */
function publicJwk(jwk: JWK, alg: JwtAlg, kid: string): JWK {
  const pub: JWK = jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  return { ...pub, kid, alg, use: 'sig' };
}

async function createKey(alg: JwtAlg): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(alg, alg === 'RS256' ? { modulusLength: 2048, extractable: true } : { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, alg, created_at: Date.now(), jwk };
}

export class SigningKeys {
  private constructor(
    private readonly keys: SigningKey[],
    readonly alg: JwtAlg,
  ) {}

  /** Load the key set from the data dir, creating a key for `alg` when there is none yet. */
  static async load(dataDir: string, alg: JwtAlg): Promise<SigningKeys> {
    mkdirSync(dataDir, { recursive: true });
    const path = join(dataDir, FILE);
    let stored: StoredKey[] = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { keys: StoredKey[] }).keys : [];
    if (!stored.some((k) => k.alg === alg)) {
      stored = [...stored, await createKey(alg)];
      writeFileSync(path, JSON.stringify({ keys: stored }, null, 2), { mode: 0o600 });
    }
    const keys: SigningKey[] = [];
    for (const k of stored) {
      keys.push({ kid: k.kid, alg: k.alg, privateKey: await importJWK(k.jwk, k.alg), publicJwk: publicJwk(k.jwk, k.alg, k.kid) });
    }
    return new SigningKeys(keys, alg);
  }

  /** The key that signs new tokens: the newest of the configured algorithm. */
  current(): SigningKey {
    const ofAlg = this.keys.filter((k) => k.alg === this.alg);
    return ofAlg[ofAlg.length - 1];
  }

  /** Every published key (all algorithms kept in the data dir, so old tokens still verify). */
  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => k.publicJwk) };
  }

  algorithms(): JwtAlg[] {
    return [...new Set(this.keys.map((k) => k.alg))];
  }
}
