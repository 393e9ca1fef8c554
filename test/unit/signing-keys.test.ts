// The AID token-signing key set (agent-identity §7): created on first start, rotated with overlap
// (published PUBLISH_AHEAD_MS before it signs, kept RETAIN_MS after its last use), switched between
// algorithms, shared through the key file. Real temp dirs and real jose keys; an injected clock.
// The key set re-reads its file at most once per RECHECK (1 s of the injected clock), so a step
// meant to make an instance look at the file again advances the clock by at least that.

import { copyFileSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { KEY_FILE, SigningKeys, type JwtAlg, type SigningKey } from '../../src/identity/signing-keys.js';
import { tempDir } from '../helpers/server.js';

const T0 = Date.UTC(2027, 0, 1);
const DAY_MS = 86_400_000;
// §7's numbers, spelled out here rather than imported, so that a changed constant fails.
/** A new key is published this long before it signs. */
const PUBLISH_AHEAD_MS = 10 * 60_000;
/** A retired key stays published this long after its last use (max token TTL + clock tolerance). */
const RETAIN_MS = 30 * 24 * 3600_000 + 60_000; // the longest admin token (30 d, §10) + 60 s; ≥ §7's the retention (30 d + 60 s)
/** Enough injected time for an instance to look at the key file again. */
const RECHECK_MS = 1000;

let clock = T0;
const now = () => clock;
const iso = (ms: number) => new Date(ms).toISOString();

const dirs: string[] = [];
function dir(): string {
  const d = tempDir('amp-signing-keys-');
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  clock = T0;
});

const load = (d: string, alg: JwtAlg = 'RS256', rotationDays = 0) => SigningKeys.load(d, alg, { rotationDays, now });
const kids = async (ks: SigningKeys) => (await ks.jwks()).keys.map((k) => k.kid);
const kidsOnDisk = (d: string): string[] =>
  (JSON.parse(readFileSync(join(d, KEY_FILE), 'utf8')) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

/** A JWT signed with `key`, as the token endpoint makes them (no exp: the clock here is not the real one). */
const signWith = (key: SigningKey, sub = 'agent:test') =>
  new SignJWT({ token_type: 'agent' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setSubject(sub)
    .setIssuedAt(Math.floor(clock / 1000))
    .sign(key.privateKey);

/** Verify `token` the way the server does: the key set's resolver and algorithm allowlist. */
const verifyWith = async (ks: SigningKeys, token: string) =>
  (await jwtVerify(token, await ks.verifier(), { algorithms: await ks.algorithms(), currentDate: new Date(clock) }))
    .payload;

describe('SigningKeys: the first start', () => {
  it('creates exactly one signing key, persists it privately, and finds it again on reload', async () => {
    const d = dir();
    const ks = await load(d);
    const cur = await ks.current();
    const { keys } = await ks.jwks();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'RSA', e: 'AQAB', kid: cur.kid, alg: 'RS256', use: 'sig' });
    expect(keys[0]).not.toHaveProperty('d'); // public members only
    expect(await calculateJwkThumbprint(keys[0]!, 'sha256')).toBe(cur.kid);
    expect(ks.status()).toEqual([
      { kid: cur.kid, alg: 'RS256', state: 'signing', activates_at: iso(T0), unpublish_at: null },
    ]);
    expect(await ks.algorithms()).toEqual(['RS256']);

    const file = join(d, KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(kidsOnDisk(d)).toEqual([cur.kid]);
    expect(readdirSync(d)).toEqual([KEY_FILE]); // no temp file left behind

    clock += 5_000;
    const again = await load(d);
    expect((await again.current()).kid).toBe(cur.kid);
    expect(await kids(again)).toEqual([cur.kid]);
    expect(kidsOnDisk(d)).toEqual([cur.kid]);
  });

  it('creates an EdDSA (Ed25519) key when configured so', async () => {
    const ks = await load(dir(), 'EdDSA');
    const cur = await ks.current();
    expect(cur.alg).toBe('EdDSA');
    expect((await ks.jwks()).keys).toEqual([
      { kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: cur.kid, alg: 'EdDSA', use: 'sig' },
    ]);
    expect(await verifyWith(ks, await signWith(cur))).toMatchObject({ sub: 'agent:test' });
  });
});

describe('SigningKeys: rotation with overlap', () => {
  it('publishes a successor at once, switches to it exactly 10 min later, and keeps the old key published the retention (30 d + 60 s) more', async () => {
    const d = dir();
    const ks = await load(d);
    const old = await ks.current();

    clock += 60_000;
    const rotatedAt = clock;
    const activation = rotatedAt + PUBLISH_AHEAD_MS;
    const next = await ks.rotate();
    expect(next).toMatchObject({ alg: 'RS256', state: 'next', activates_at: iso(activation), unpublish_at: null });
    expect(next.kid).not.toBe(old.kid);
    // Published at once, before it signs: verifiers with a cached JWKS already know it.
    expect(await kids(ks)).toEqual([old.kid, next.kid]);
    expect(kidsOnDisk(d)).toEqual([old.kid, next.kid]);
    expect((await ks.current()).kid).toBe(old.kid);

    clock = activation - 1;
    expect((await ks.current()).kid).toBe(old.kid);
    // The last token the old key signs.
    const lastOld = await signWith(old, 'agent:last-old');

    clock = activation;
    const cur = await ks.current();
    expect(cur.kid).toBe(next.kid);
    expect(ks.status()).toEqual([
      {
        kid: old.kid,
        alg: 'RS256',
        state: 'retired',
        activates_at: iso(T0),
        unpublish_at: iso(activation + RETAIN_MS),
      },
      { kid: next.kid, alg: 'RS256', state: 'signing', activates_at: iso(activation), unpublish_at: null },
    ]);
    const firstNew = await signWith(cur, 'agent:first-new');
    expect(await verifyWith(ks, lastOld)).toMatchObject({ sub: 'agent:last-old' });
    expect(await verifyWith(ks, firstNew)).toMatchObject({ sub: 'agent:first-new' });

    // Still published to the last millisecond of the overlap.
    clock = activation + RETAIN_MS - 1;
    expect(await kids(ks)).toEqual([old.kid, next.kid]);
    expect(await verifyWith(ks, lastOld)).toMatchObject({ sub: 'agent:last-old' });
    expect(kidsOnDisk(d)).toEqual([old.kid, next.kid]);

    // Gone at the end of the overlap: a fresh load drops it from the JWKS and from the file.
    clock = activation + RETAIN_MS;
    const fresh = await load(d);
    expect(await kids(fresh)).toEqual([next.kid]);
    expect(kidsOnDisk(d)).toEqual([next.kid]);
    expect(fresh.status().map((s) => s.state)).toEqual(['signing']);
    await expect(verifyWith(fresh, lastOld)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    expect(await verifyWith(fresh, firstNew)).toMatchObject({ sub: 'agent:first-new' });

    // The running instance follows at its next look at the file.
    clock += RECHECK_MS;
    expect(await kids(ks)).toEqual([next.kid]);
    await expect(verifyWith(ks, lastOld)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  it('rotate({immediate}) signs at once, cancels a successor scheduled for later, and retires the old key from now', async () => {
    const d = dir();
    const ks = await load(d);
    const old = await ks.current();

    clock += 2_000;
    const scheduled = await ks.rotate();
    expect(scheduled.state).toBe('next');
    const scheduledActivation = clock + PUBLISH_AHEAD_MS;

    clock += 2_000;
    const cutAt = clock;
    const imm = await ks.rotate({ immediate: true });
    expect(imm).toMatchObject({ alg: 'RS256', state: 'signing', activates_at: iso(cutAt), unpublish_at: null });
    expect((await ks.current()).kid).toBe(imm.kid);
    expect(await kids(ks)).toEqual([old.kid, imm.kid]);
    expect(kidsOnDisk(d)).toEqual([old.kid, imm.kid]);
    expect(ks.status()).toEqual([
      { kid: old.kid, alg: 'RS256', state: 'retired', activates_at: iso(T0), unpublish_at: iso(cutAt + RETAIN_MS) },
      { kid: imm.kid, alg: 'RS256', state: 'signing', activates_at: iso(cutAt), unpublish_at: null },
    ]);

    // The cancelled successor never signs, not even after its planned activation.
    clock = scheduledActivation + 1;
    expect((await ks.current()).kid).toBe(imm.kid);
    expect((await (await load(d)).current()).kid).toBe(imm.kid);
    expect(kidsOnDisk(d)).not.toContain(scheduled.kid);
  });

  it('a later scheduled rotation does not cancel an earlier one; each signs in its turn', async () => {
    const ks = await load(dir());
    const k1 = await ks.current();
    clock += 2_000;
    const k2 = await ks.rotate();
    clock += 60_000;
    const k3 = await ks.rotate();
    expect(await kids(ks)).toEqual([k1.kid, k2.kid, k3.kid]);
    clock = Date.parse(k2.activates_at);
    expect((await ks.current()).kid).toBe(k2.kid);
    clock = Date.parse(k3.activates_at);
    expect((await ks.current()).kid).toBe(k3.kid);
    // k2 signed for one minute only; it stays published the retention (30 d + 60 s) after that minute.
    expect(ks.status().find((s) => s.kid === k2.kid)).toMatchObject({
      state: 'retired',
      unpublish_at: iso(Date.parse(k3.activates_at) + RETAIN_MS),
    });
  });
});

describe('SigningKeys: automatic rotation', () => {
  it('after rotationDays publishes one successor that signs 10 min later, and no second one meanwhile', async () => {
    const d = dir();
    const ks = await load(d, 'RS256', 1);
    const k1 = await ks.current();

    clock = T0 + DAY_MS - RECHECK_MS;
    expect(await kids(ks)).toEqual([k1.kid]);

    clock = T0 + DAY_MS;
    expect(await kids(ks)).toHaveLength(2);
    const due = clock + PUBLISH_AHEAD_MS;
    const [, k2] = ks.status();
    expect(ks.status()).toEqual([
      { kid: k1.kid, alg: 'RS256', state: 'signing', activates_at: iso(T0), unpublish_at: null },
      { kid: k2!.kid, alg: 'RS256', state: 'next', activates_at: iso(due), unpublish_at: null },
    ]);
    expect(kidsOnDisk(d)).toEqual([k1.kid, k2!.kid]);
    expect((await ks.current()).kid).toBe(k1.kid);

    // Further syncs before it activates, by this instance and by a fresh one, add nothing.
    for (const at of [T0 + DAY_MS + 2 * RECHECK_MS, T0 + DAY_MS + 5 * 60_000, due - 1]) {
      clock = at;
      expect(await kids(ks)).toEqual([k1.kid, k2!.kid]);
      expect((await ks.current()).kid).toBe(k1.kid);
    }
    expect(await kids(await load(d, 'RS256', 1))).toEqual([k1.kid, k2!.kid]);
    expect(kidsOnDisk(d)).toEqual([k1.kid, k2!.kid]);

    clock = due;
    expect((await ks.current()).kid).toBe(k2!.kid);

    // The next successor is due a rotation period after k2 started signing, not after it was made.
    clock = due + DAY_MS - RECHECK_MS;
    expect(await kids(ks)).toEqual([k1.kid, k2!.kid]);
    clock = due + DAY_MS;
    expect(await kids(ks)).toHaveLength(3);
    expect(ks.status().map((s) => s.state)).toEqual(['retired', 'signing', 'next']);
  });

  it('rotationDays = 0 never rotates by itself', async () => {
    const ks = await load(dir(), 'RS256', 0);
    const k1 = await ks.current();
    clock = T0 + 3650 * DAY_MS;
    expect(await kids(ks)).toEqual([k1.kid]);
    expect((await ks.current()).kid).toBe(k1.kid);
  });
});

describe('SigningKeys: algorithm switch', () => {
  it('RS256 -> EdDSA: the EdDSA key signs at once, the RS256 key stays published (retired) for the retention (30 d + 60 s)', async () => {
    const d = dir();
    const rs = await load(d, 'RS256');
    const rsKey = await rs.current();
    const rsToken = await signWith(rsKey, 'agent:rs');

    clock += 1_000;
    const switchedAt = clock;
    const ed = await load(d, 'EdDSA');
    const edKey = await ed.current();
    expect(edKey.alg).toBe('EdDSA');
    expect(edKey.kid).not.toBe(rsKey.kid);
    expect(await kids(ed)).toEqual([rsKey.kid, edKey.kid]);
    expect(await ed.algorithms()).toEqual(['RS256', 'EdDSA']);
    expect(ed.status()).toEqual([
      {
        kid: rsKey.kid,
        alg: 'RS256',
        state: 'retired',
        activates_at: iso(T0),
        unpublish_at: iso(switchedAt + RETAIN_MS),
      },
      { kid: edKey.kid, alg: 'EdDSA', state: 'signing', activates_at: iso(switchedAt), unpublish_at: null },
    ]);
    expect(await verifyWith(ed, rsToken)).toMatchObject({ sub: 'agent:rs' });
    expect(await verifyWith(ed, await signWith(edKey, 'agent:ed'))).toMatchObject({ sub: 'agent:ed' });

    // The switch time is recorded in the file, so a restart does not extend the overlap.
    clock = switchedAt + RETAIN_MS - RECHECK_MS;
    expect(await kids(await load(d, 'EdDSA'))).toEqual([rsKey.kid, edKey.kid]);
    expect(await kids(ed)).toEqual([rsKey.kid, edKey.kid]);

    clock = switchedAt + RETAIN_MS;
    expect(await kids(ed)).toEqual([edKey.kid]);
    expect(await ed.algorithms()).toEqual(['EdDSA']);
    expect(kidsOnDisk(d)).toEqual([edKey.kid]);
    await expect(verifyWith(ed, rsToken)).rejects.toThrow();
    expect((await (await load(d, 'EdDSA')).current()).kid).toBe(edKey.kid);
  });

  it('an algorithm switched away from and back again signs without its old retirement time, and stays published the retention (30 d + 60 s) after the next switch', async () => {
    const d = dir();
    const rsa = await (await load(d, 'RS256')).current();
    clock += 1000;
    await load(d, 'EdDSA'); // RS256 retires now...
    clock += 12 * 3600_000;
    const back = await load(d, 'RS256'); // ...and signs again
    expect((await back.current()).kid).toBe(rsa.kid);
    expect(back.status().find((k) => k.kid === rsa.kid)).toMatchObject({ state: 'signing', unpublish_at: null });
    clock += RETAIN_MS; // past the retention counted from the first switch
    const token = await signWith(await back.current());
    const ed = await load(d, 'EdDSA');
    expect(ed.status().find((k) => k.kid === rsa.kid)).toMatchObject({
      state: 'retired',
      unpublish_at: iso(clock + RETAIN_MS),
    });
    expect((await verifyWith(ed, token)).sub).toBe('agent:test');
  });
});

describe('SigningKeys: the key file', () => {
  it('refuses a corrupt file with an error naming it, and leaves it alone', async () => {
    const d = dir();
    const file = join(d, KEY_FILE);
    writeFileSync(file, '{"keys": [');
    await expect(load(d)).rejects.toThrow(`${file} is not valid JSON`);
    expect(readFileSync(file, 'utf8')).toBe('{"keys": [');

    writeFileSync(file, JSON.stringify({ keys: [{ kid: 'k', alg: 'HS256', jwk: {} }] }));
    await expect(load(d)).rejects.toThrow(`${file} is not an amp-relay signing key set`);
    writeFileSync(file, JSON.stringify({ something: 'else' }));
    await expect(load(d)).rejects.toThrow(`${file} is not an amp-relay signing key set`);
  });

  it('a second instance on the same dir sees a rotation by the first at its next look at the file', async () => {
    const d = dir();
    const a = await load(d);
    const b = await load(d);
    const k1 = await a.current();
    expect((await b.current()).kid).toBe(k1.kid);

    clock += 2 * RECHECK_MS;
    expect(await kids(b)).toEqual([k1.kid]); // b looks at the file now...
    const k2 = await a.rotate();
    // ...and not again within a second (the throttle), so it does not know k2 yet.
    expect(await kids(b)).toEqual([k1.kid]);

    clock += RECHECK_MS;
    expect(await kids(b)).toEqual([k1.kid, k2.kid]);
    expect(b.status().map((s) => s.state)).toEqual(['signing', 'next']);

    // An immediate rotation that also cancels k2, seen by b a second later.
    clock += RECHECK_MS;
    const k3 = await a.rotate({ immediate: true });
    clock += RECHECK_MS;
    expect((await b.current()).kid).toBe(k3.kid);
    expect(await kids(b)).toEqual([k1.kid, k3.kid]);
    const token = await signWith(await a.current(), 'agent:by-a');
    expect(await verifyWith(b, token)).toMatchObject({ sub: 'agent:by-a' });

    // And the other way round: a rotation by b reaches a.
    clock += RECHECK_MS;
    const k4 = await b.rotate({ immediate: true });
    clock += RECHECK_MS;
    expect((await a.current()).kid).toBe(k4.kid);
    expect(await kids(a)).toEqual([k1.kid, k3.kid, k4.kid]);
  });

  it('a rotation written by another process while this one generates a key is kept, not overwritten', async () => {
    const d = dir();
    const server = await load(d, 'RS256', 1);
    const old = (await server.current()).kid;
    clock += DAY_MS; // the server is due for an automatic successor
    // What `rotate-signing-key --immediate` in another process writes, prepared on a copy.
    const d2 = dir();
    copyFileSync(join(d, KEY_FILE), join(d2, KEY_FILE));
    const rotated = await (await load(d2, 'RS256')).rotate({ immediate: true });
    const cliFile = readFileSync(join(d2, KEY_FILE));
    const syncing = server.jwks(); // starts generating the successor (RSA key generation is async)
    await new Promise((r) => setImmediate(r));
    writeFileSync(join(d, 'cli.tmp'), cliFile, { mode: 0o600 }); // lands meanwhile, as the CLI writes
    renameSync(join(d, 'cli.tmp'), join(d, KEY_FILE));
    await syncing;
    expect(kidsOnDisk(d)).toContain(rotated.kid);
    clock += RECHECK_MS;
    expect((await server.current()).kid).toBe(rotated.kid);
    expect((await load(d)).status().find((k) => k.kid === old)?.state).toBe('retired');
  });
});
