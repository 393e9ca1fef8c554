// The platform's token-signing key set (spec agent-identity §7): created on first start in the
// data dir, RS256 (RSA 2048) by default or EdDSA (Ed25519), `kid` = RFC 7638 thumbprint. The only
// module family that imports jose is src/identity/.
//
// Rotation with overlap: a new key is published PUBLISH_AHEAD_MS before it signs (so verifiers
// with a cached JWKS already know it), and a retired key stays published RETAIN_MS after its
// last use (so every token it signed still verifies until it expires). A key retires when a
// newer key of the configured algorithm starts signing, or when the configured algorithm changes.
// The key file is re-read when it changes on disk, so `amp-relay rotate-signing-key` works while
// the server runs.

import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { AmpError } from '../../proto/index.js';

/** Seconds before retrying a write refused for lack of space (as the store answers). */
const STORAGE_RETRY_AFTER_S = 10;

export type JwtAlg = 'RS256' | 'EdDSA';

export const KEY_FILE = 'aid-signing-keys.json';
/** §7: a new key is published at least 10 min before it signs. */
export const PUBLISH_AHEAD_MS = 10 * 60_000;
/**
 * §7: a retired key stays published at least 24 h + 60 s after its last use (the longest agent
 * token + clock tolerance). Admin tokens live up to 30 days (§10), so keys stay that long + 60 s.
 */
export const RETAIN_MS = 30 * 24 * 3600_000 + 60_000;
/** How often, at most, the key file's mtime is checked. */
const RECHECK_MS = 1000;

interface StoredKey {
  kid: string;
  alg: JwtAlg;
  created_at: number;
  /** When it starts signing (ms). Absent in files written before rotation existed: = created_at. */
  activates_at?: number;
  /** When it stopped signing because the configured algorithm changed (ms). */
  retired_at?: number;
  /** Private JWK (includes the public members). */
  jwk: JWK;
}

export interface SigningKey {
  kid: string;
  alg: JwtAlg;
  activatesAt: number;
  privateKey: Awaited<ReturnType<typeof importJWK>>;
  publicJwk: JWK;
}

export interface SigningKeyOptions {
  /** Start a successor when the signing key is this old (days); 0 = only by hand. */
  rotationDays?: number;
  /** Clock (ms); tests inject one. */
  now?: () => number;
}

/** `SigningKeys.open` found no key it could sign with (a wrong data dir, or a server never started). */
export class NoSigningKeysError extends Error {}

export interface KeyStatus {
  kid: string;
  alg: JwtAlg;
  state: 'signing' | 'next' | 'retired';
  activates_at: string;
  /** For retired keys: when it leaves the JWKS. */
  unpublish_at: string | null;
}

/** Public members only, for the JWKS. */
function publicJwk(jwk: JWK, alg: JwtAlg, kid: string): JWK {
  const pub: JWK = jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  return { ...pub, kid, alg, use: 'sig' };
}

async function createKey(alg: JwtAlg, now: number, activatesAt: number): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(
    alg,
    alg === 'RS256' ? { modulusLength: 2048, extractable: true } : { crv: 'Ed25519', extractable: true },
  );
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, alg, created_at: now, activates_at: activatesAt, jwk };
}

/**
 * A failure to reach the key file other than its absence, said plainly: a permission problem is
 * the wrong user, never a reason to move the keys away (that would start a new key set).
 */
function readFailure(path: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return new Error(
      `permission denied reading ${path} (${err.code}): run this as the server's user ` +
        '(e.g. sudo -u amp-relay ...), or check the owner and mode of the data dir and the file',
    );
  return new Error(`cannot read ${path}: ${err.message}`);
}

/** The file's identity (inode, mtime, size), or 'none' when it does not exist; other errors throw. */
function fileVersion(path: string): string {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    throw readFailure(path, e);
  }
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

const activatesAt = (k: StoredKey): number => k.activates_at ?? k.created_at;

/** The stored keys; none when the file does not exist (ENOENT only: an unreadable file throws). */
function readStored(path: string): StoredKey[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw readFailure(path, e);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `${path} is not valid JSON (${(e as Error).message}); restore it from a backup or move it away to start a new key set`,
    );
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (
    !Array.isArray(keys) ||
    keys.some(
      (k) => typeof k?.kid !== 'string' || (k.alg !== 'RS256' && k.alg !== 'EdDSA') || typeof k.jwk !== 'object',
    )
  ) {
    throw new Error(`${path} is not an amp-relay signing key set`);
  }
  return keys as StoredKey[];
}

/** Write the file whole or not at all (temp file + rename), private to the owner. A full disk is 507. */
function writeStored(path: string, keys: StoredKey[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw e;
    throw new AmpError(
      'insufficient_storage',
      'The server is out of storage space; the signing keys were not changed',
      {
        retryAfter: STORAGE_RETRY_AFTER_S,
      },
    );
  }
}

/**
 * The signing key at `now`, and for each stored key when it stopped signing (Infinity while it
 * still signs or has not started).
 */
function schedule(
  stored: StoredKey[],
  alg: JwtAlg,
  now: number,
): { signing: StoredKey | undefined; retiredAt: Map<string, number> } {
  const ofAlg = stored.filter((k) => k.alg === alg).sort((a, b) => activatesAt(a) - activatesAt(b));
  const started = ofAlg.filter((k) => activatesAt(k) <= now);
  const signing = started[started.length - 1];
  const retiredAt = new Map<string, number>();
  for (const k of stored) {
    if (k.alg !== alg) retiredAt.set(k.kid, k.retired_at ?? now);
    else if (k === signing || activatesAt(k) > now) retiredAt.set(k.kid, Infinity);
    else retiredAt.set(k.kid, activatesAt(started[started.indexOf(k) + 1]));
  }
  return { signing, retiredAt };
}

export class SigningKeys {
  private keys: SigningKey[] = [];
  private stored: StoredKey[] = [];
  /** Identity of the file last read (inode + mtime: every write is a rename). */
  private version = '';
  private checkedAt = -Infinity;
  private readonly path: string;
  private readonly now: () => number;
  private readonly rotationMs: number;
  private refreshing: Promise<void> | null = null;
  private localSet: ReturnType<typeof createLocalJWKSet> | null = null;
  /** Opened by a CLI beside the server: never writes the file (the server owns the schedule). */
  private readOnly = false;

  private constructor(
    dataDir: string,
    readonly alg: JwtAlg,
    opts: SigningKeyOptions,
  ) {
    this.path = join(dataDir, KEY_FILE);
    this.now = opts.now ?? Date.now;
    this.rotationMs = (opts.rotationDays ?? 0) * 86_400_000;
  }

  /** Load the key set from the data dir, creating a key for `alg` when there is none yet. */
  static async load(dataDir: string, alg: JwtAlg, opts: SigningKeyOptions = {}): Promise<SigningKeys> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // private, as the server makes it
    const ks = new SigningKeys(dataDir, alg, opts);
    await ks.sync(true);
    return ks;
  }

  /**
   * The key set a running (or once-run) server made, read-only: for minting admin tokens from the
   * CLI. Never creates a key: a missing file or no signing key of `alg` throws NoSigningKeysError,
   * so a wrong data dir is reported instead of silently getting a key set the server never sees.
   */
  static async open(dataDir: string, alg: JwtAlg, opts: SigningKeyOptions = {}): Promise<SigningKeys> {
    const ks = new SigningKeys(dataDir, alg, opts);
    ks.readOnly = true;
    const stored = readStored(ks.path);
    if (stored.length === 0)
      throw new NoSigningKeysError(
        `no signing keys in ${dataDir} (no ${KEY_FILE}): is the data dir right (--data-dir / AMP_DATA_DIR), ` +
          'and has the server run once with it?',
      );
    if (ks.needed(stored, ks.now()) === 'now') {
      const algs = [...new Set(stored.map((k) => k.alg))].join(', ');
      throw new NoSigningKeysError(
        `no ${alg} signing key in ${join(dataDir, KEY_FILE)} (it holds ${algs}): ` +
          `is AID_JWT_ALG (--aid-jwt-alg) the server's?`,
      );
    }
    await ks.sync(true);
    return ks;
  }

  /**
   * Schedule a successor for the configured algorithm: it is published at once and signs from
   * `now + PUBLISH_AHEAD_MS`, or at once with `immediate` (a compromised key: verifiers holding a
   * cached JWKS refetch it on the unknown kid). Returns the new key's status.
   */
  async rotate(opts: { immediate?: boolean } = {}): Promise<KeyStatus> {
    await this.sync(true);
    let kid = '';
    await this.update((stored, fresh, now) => {
      const key = { ...fresh!, created_at: now, activates_at: opts.immediate ? now : now + PUBLISH_AHEAD_MS };
      kid = key.kid;
      // An immediate rotation also cancels successors scheduled later than it.
      const kept = opts.immediate ? stored.filter((k) => !(k.alg === this.alg && activatesAt(k) > now)) : stored;
      return [...kept, key];
    }, true);
    return this.status().find((s) => s.kid === kid)!;
  }

  /** The key that signs new tokens now. */
  async current(): Promise<SigningKey> {
    await this.sync(false);
    const { signing } = schedule(this.stored, this.alg, this.now());
    return this.keys.find((k) => k.kid === signing!.kid)!;
  }

  /** Every published key: the signing one, scheduled successors, and retired ones still in overlap. */
  async jwks(): Promise<{ keys: JWK[] }> {
    await this.sync(false);
    return { keys: this.keys.map((k) => k.publicJwk) };
  }

  /** A jose key resolver over the published keys (rebuilt when the set changes). */
  async verifier(): Promise<ReturnType<typeof createLocalJWKSet>> {
    await this.sync(false);
    return (this.localSet ??= createLocalJWKSet({ keys: this.keys.map((k) => k.publicJwk) }));
  }

  async algorithms(): Promise<JwtAlg[]> {
    await this.sync(false);
    return [...new Set(this.keys.map((k) => k.alg))];
  }

  status(): KeyStatus[] {
    const now = this.now();
    const { signing, retiredAt } = schedule(this.stored, this.alg, now);
    return this.stored.map((k) => {
      const r = retiredAt.get(k.kid)!;
      return {
        kid: k.kid,
        alg: k.alg,
        state: k === signing ? 'signing' : r === Infinity ? 'next' : 'retired',
        activates_at: new Date(activatesAt(k)).toISOString(),
        unpublish_at: r === Infinity ? null : new Date(r + RETAIN_MS).toISOString(),
      };
    });
  }

  /**
   * Bring the in-memory set up to date: re-read the file when it changed, create the first key or
   * an automatic successor, record an algorithm switch, and drop keys past their overlap.
   */
  private sync(force: boolean): Promise<void> {
    const now = this.now();
    if (!force && now - this.checkedAt < RECHECK_MS) return Promise.resolve();
    this.checkedAt = now;
    // One refresh at a time: callers arriving meanwhile wait for it; a forced one runs after it.
    if (this.refreshing && !force) return this.refreshing;
    const p: Promise<void> = (this.refreshing ?? Promise.resolve())
      .then(() => this.doSync())
      .finally(() => {
        if (this.refreshing === p) this.refreshing = null;
      });
    this.refreshing = p;
    return p;
  }

  /** The file as it is now (re-parsed only when it changed), with its version. */
  private readNow(): { stored: StoredKey[]; version: string } {
    const version = fileVersion(this.path);
    return { stored: version === this.version ? this.stored : readStored(this.path), version };
  }

  /** Which key this set needs now: the first one / a replacement after a switch, an automatic successor, or none. */
  private needed(stored: StoredKey[], now: number): 'now' | 'successor' | null {
    const ofAlg = stored.filter((k) => k.alg === this.alg);
    if (!ofAlg.some((k) => activatesAt(k) <= now)) return 'now';
    if (this.rotationMs <= 0 || ofAlg.some((k) => activatesAt(k) > now)) return null;
    const { signing } = schedule(stored, this.alg, now);
    return signing && now - activatesAt(signing) >= this.rotationMs ? 'successor' : null;
  }

  /**
   * Apply a change to the file without losing a concurrent writer's (the CLI's, or another
   * instance's): slow key generation happens first, then the file is re-read, changed and
   * written in one synchronous step.
   */
  private async update(
    change: (stored: StoredKey[], fresh: StoredKey | undefined, now: number) => StoredKey[] | null,
    generate: boolean,
  ): Promise<void> {
    const fresh = generate ? await createKey(this.alg, this.now(), this.now()) : undefined;
    const now = this.now();
    const { stored: before, version } = this.readNow();
    let stored = change(before, fresh, now) ?? before;
    let changed = stored !== before;
    // The configured algorithm signs; keys of another stopped when the configuration changed.
    stored = stored.map((k) => {
      if (k.alg === this.alg ? k.retired_at === undefined : k.retired_at !== undefined) return k;
      changed = true;
      if (k.alg !== this.alg) return { ...k, retired_at: now };
      const { retired_at: _dropped, ...signingAgain } = k;
      return signingAgain;
    });
    const { retiredAt } = schedule(stored, this.alg, now);
    const live = stored.filter((k) => retiredAt.get(k.kid)! + RETAIN_MS > now);
    if (live.length !== stored.length) changed = true;
    stored = live;
    if (changed && !this.readOnly) writeStored(this.path, stored);
    const newVersion = changed ? fileVersion(this.path) : version;
    const byKid = new Map(this.keys.map((k) => [k.kid, k]));
    const keys: SigningKey[] = [];
    for (const k of stored) {
      keys.push(
        byKid.get(k.kid) ?? {
          kid: k.kid,
          alg: k.alg,
          activatesAt: activatesAt(k),
          privateKey: await importJWK(k.jwk, k.alg),
          publicJwk: publicJwk(k.jwk, k.alg, k.kid),
        },
      );
    }
    if (keys.length !== this.keys.length || keys.some((k, i) => k !== this.keys[i])) this.localSet = null;
    this.stored = stored;
    this.keys = keys;
    this.version = newVersion;
  }

  private async doSync(): Promise<void> {
    const generate = !this.readOnly && this.needed(this.readNow().stored, this.now()) !== null;
    await this.update((stored, fresh, now) => {
      const need = this.needed(stored, now);
      if (!need || !fresh) return null;
      return [...stored, { ...fresh, created_at: now, activates_at: need === 'now' ? now : now + PUBLISH_AHEAD_MS }];
    }, generate);
  }
}
