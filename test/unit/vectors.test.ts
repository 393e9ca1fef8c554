// Known-answer tests driven by the spec's vectors (test/fixtures/test-vectors.json, a copy of
// ../shared/spec/test-vectors.json kept equal by test/unit/fixtures-sync.test.ts).
// Every case of the file becomes a test: adding a vector adds a test.
import { readFileSync } from 'node:fs';
import { createHash, createHmac, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { describe, expect, it } from 'vitest';
import {
  API_KEY_RE,
  canonicalJson,
  canonicalString,
  decodeRouteBody,
  isAcceptedMessageId,
  isGeneratedMessageId,
  parseAddress,
  payloadHash,
  registerProofString,
  wsAuthString,
} from '../../proto/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const V: Any = JSON.parse(readFileSync(new URL('../fixtures/test-vectors.json', import.meta.url), 'utf8'));
const X: Any = V.amp_relay_extra;

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest();
const u8 = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

interface Keys {
  priv: KeyObject;
  pub: KeyObject;
  spki: Buffer;
  raw: Buffer;
  vector: Any;
}
function keyFromSeed(seedHex: string): Omit<Keys, 'vector'> {
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(seedHex, 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });
  const pub = createPublicKey(priv);
  const spki = pub.export({ format: 'der', type: 'spki' });
  return { priv, pub, spki, raw: spki.subarray(spki.length - 32) };
}
const KEYS = new Map<string, Keys>((X.keys as Any[]).map((k) => [k.id, { ...keyFromSeed(k.seed_hex), vector: k }]));
function key(id: string): Keys {
  const k = KEYS.get(id);
  if (!k) throw new Error(`vector refers to unknown key ${id}`);
  return k;
}
const ed25519 = (id: string, msg: Buffer) => sign(null, msg, key(id).priv);
const nobleVerify = (sig: Buffer, msg: Buffer, id: string) => ed.verifyAsync(u8(sig), u8(msg), u8(key(id).raw));

/** Signs `msg` with node:crypto, compares with the expected bytes, and cross-verifies with @noble. */
async function checkSignature(keyId: string, msg: Buffer, expected: Buffer) {
  expect(expected.length).toBe(64);
  expect(ed25519(keyId, msg).toString('base64')).toBe(expected.toString('base64'));
  expect(await nobleVerify(expected, msg, keyId)).toBe(true);
  const tampered = Buffer.concat([msg, Buffer.from('x')]);
  expect(await nobleVerify(expected, tampered, keyId)).toBe(false);
}

describe('address_parsing', () => {
  it.each(V.address_parsing.test_cases as Any[])('$id $input', (c) => {
    expect(parseAddress(c.input, ['aimaestro.local'])).toEqual(c.expected);
  });
});

/** Pairs of wrong_* json / hash fields (and insertion_order_*) found in a payload_hash case. */
function wrongPairs(c: Any): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const k of Object.keys(c)) {
    if (!k.endsWith('_json') || !(k.startsWith('wrong_') || k.startsWith('insertion_order_'))) continue;
    const hashKey = k.replace(/_json$/, '_sha256_base64');
    expect(c[hashKey], `${c.id}: ${hashKey} missing`).toBeTypeOf('string');
    pairs.push([c[k], c[hashKey]]);
  }
  return pairs;
}

describe('payload_hash', () => {
  const cases = [...(V.payload_hash.test_cases as Any[]), ...(X.payload_hash as Any[])];
  it.each(cases)('$id', (c) => {
    if (c.compact_sorted_json !== undefined) {
      expect(canonicalJson(c.input_payload)).toBe(c.compact_sorted_json);
      // The vector itself is consistent: plain sha256 of its JSON is its hash.
      expect(sha256(c.compact_sorted_json).toString('base64')).toBe(c.expected_sha256_base64);
    }
    expect(payloadHash(c.input_payload)).toBe(c.expected_sha256_base64);
    for (const [wrongJson, wrongHash] of wrongPairs(c)) {
      expect(sha256(wrongJson).toString('base64')).toBe(wrongHash);
      expect(canonicalJson(c.input_payload)).not.toBe(wrongJson);
      expect(payloadHash(c.input_payload)).not.toBe(wrongHash);
    }
  });

  it('covers the wrong_* traps (int keys, astral keys, ascii escaping, insertion order)', () => {
    expect(
      cases
        .filter((c) => wrongPairs(c).length > 0)
        .map((c) => c.id)
        .sort(),
    ).toEqual(['hash-astral-keys', 'hash-insertion-order-negative', 'hash-int-keys', 'hash-utf8']);
  });
});

describe('canonical_string', () => {
  it.each(V.canonical_string.test_cases as Any[])('$id', (c) => {
    expect(canonicalString(c.input)).toBe(c.expected_canonical);
  });
  // Spec §10: priority = normal when absent/null; in_reply_to = "" when absent/null.
  it.each([undefined, null])('priority / in_reply_to %s -> "normal" / ""', (v) => {
    const c = (V.canonical_string.test_cases as Any[]).find((x) => x.id === 'canon-001');
    expect(canonicalString({ ...c.input, priority: v, in_reply_to: v })).toBe(c.expected_canonical);
  });
});

describe('message_id_validation', () => {
  // Spec §9: received ids match ^msg[_-][0-9]+[_-][A-Za-z0-9]+$, so the uppercase vector is accepted.
  const acceptedOverride: Record<string, boolean> = { 'msgid-006': true };
  it.each(V.message_id_validation.test_cases as Any[])('$id "$input"', (c) => {
    expect(isGeneratedMessageId(c.input)).toBe(c.expected_valid);
    expect(isAcceptedMessageId(c.input)).toBe(acceptedOverride[c.id] ?? c.expected_valid);
  });
  it('accepting regex: traversal, slash and empty refused; uppercase and dash forms accepted', () => {
    for (const bad of ['../../../etc/passwd', 'msg_1706648400_abc/123', '', 'msg_1_a.b', 'msg_1_a%2f', 'msg_x_abc']) {
      expect(isAcceptedMessageId(bad), bad).toBe(false);
    }
    for (const good of ['msg_1706648400_ABC123', 'msg-1706648400-AbC', 'msg_1_a'])
      expect(isAcceptedMessageId(good), good).toBe(true);
    expect(isAcceptedMessageId('msg_1_' + 'a'.repeat(123))).toBe(false); // 129 chars > 128
    expect(isAcceptedMessageId('msg_1_' + 'a'.repeat(122))).toBe(true); // 128 chars
  });
});

describe('scan_status', () => {
  // Spec §22: scan_status ∈ pending, clean, basic_clean, unscanned, suspicious, rejected.
  const SCAN_STATUS = new Set(['pending', 'clean', 'basic_clean', 'unscanned', 'suspicious', 'rejected']);
  it('valid_values equal the spec set', () => {
    expect(new Set((V.scan_status.valid_values as Any[]).map((v) => v.value))).toEqual(SCAN_STATUS);
  });
  it.each(V.scan_status.invalid_values as Any[])('$id $value is not a scan_status', (c) => {
    expect(SCAN_STATUS.has(c.value)).toBe(false);
  });
});

describe('amp_relay_extra.keys', () => {
  it.each(X.keys as Any[])('$id', (k) => {
    const { pub, spki, raw } = key(k.id);
    expect(raw.toString('hex')).toBe(k.public_raw_hex);
    expect(spki.toString('hex')).toBe(k.spki_der_hex);
    expect(spki.toString('hex')).toBe('302a300506032b6570032100' + k.public_raw_hex);
    expect(String(pub.export({ format: 'pem', type: 'spki' })).trim()).toBe(k.public_pem);
    expect('SHA256:' + sha256(spki).toString('base64')).toBe(k.fingerprint);
    expect('SHA256:' + sha256(raw).toString('base64')).toBe(k.fingerprint_raw);
    const jwk = pub.export({ format: 'jwk' });
    expect({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }).toEqual(k.jwk);
    expect(Buffer.from(k.jwk.x, 'base64url').toString('hex')).toBe(k.public_raw_hex);
  });
});

describe('amp_relay_extra.fingerprints', () => {
  it.each(X.fingerprints as Any[])('$id', (f) => {
    let spki: Buffer;
    if (f.key !== undefined) {
      spki = Buffer.from(f.spki_der_hex, 'hex');
      expect(spki.equals(key(f.key).spki)).toBe(true);
    } else {
      spki = createPublicKey(f.public_pem).export({ format: 'der', type: 'spki' });
      expect(spki.subarray(12).toString('hex')).toBe(f.expected_public_raw_hex);
    }
    expect(spki.length).toBe(44);
    expect('SHA256:' + sha256(spki).toString('base64')).toBe(f.expected_fingerprint);
    expect('SHA256:' + sha256(spki.subarray(12)).toString('base64')).toBe(f.expected_fingerprint_raw);
  });
});

describe('amp_relay_extra.signatures', () => {
  it.each(X.signatures as Any[])('$id', async (s) => {
    let msg: Buffer;
    if (s.message_hex !== undefined) {
      msg = Buffer.from(s.message_hex, 'hex');
    } else {
      expect(canonicalString(s.input)).toBe(s.canonical_string);
      msg = Buffer.from(s.canonical_string, 'utf8');
    }
    const expected =
      s.expected_signature_hex !== undefined
        ? Buffer.from(s.expected_signature_hex, 'hex')
        : Buffer.from(s.expected_signature_base64, 'base64');
    await checkSignature(s.key, msg, expected);

    if (s.route_body !== undefined) {
      // The route body as the CLI sends it decodes to fields that rebuild the same canonical string.
      expect(payloadHash(s.route_body.payload)).toBe(s.input.payload_hash);
      const req = decodeRouteBody(s.route_body, { nowMs: Date.parse('2026-01-01T00:00:00Z') });
      expect(req.payload).toEqual(s.route_body.payload);
      const rebuilt = canonicalString({
        from: s.input.from,
        to: req.to,
        subject: req.subject,
        priority: req.priority,
        in_reply_to: req.in_reply_to,
        payload_hash: payloadHash(req.payload),
      });
      expect(rebuilt).toBe(s.canonical_string);
    }
  });
  it('sig-rfc8032-empty is the RFC 8032 TEST 1 empty-message case', () => {
    const s = (X.signatures as Any[]).find((x) => x.id === 'sig-rfc8032-empty');
    expect(s.message_hex).toBe('');
    expect(key(s.key).raw.toString('hex')).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  });
});

describe('amp_relay_extra.ws_signed_auth', () => {
  it.each(X.ws_signed_auth as Any[])('$id', async (c) => {
    const f = c.frame_without_signature;
    expect(f.type).toBe('auth');
    const input = wsAuthString(String(f.timestamp), f.address);
    expect(input).toBe(c.signing_input);
    await checkSignature(c.key, Buffer.from(input, 'utf8'), Buffer.from(c.expected_signature_base64, 'base64'));
  });
});

describe('amp_relay_extra.key_recovery_proof', () => {
  it.each(X.key_recovery_proof as Any[])('$id', async (c) => {
    const input = registerProofString(String(c.timestamp), c.address);
    expect(input).toBe(c.signing_input);
    await checkSignature(c.key, Buffer.from(input, 'utf8'), Buffer.from(c.expected_signature_base64, 'base64'));
  });
});

describe('amp_relay_extra.key_rotation_proof', () => {
  it.each(X.key_rotation_proof as Any[])('$id', async (c) => {
    const newKey = key(c.new_key).vector;
    let msg: Buffer;
    if (c.signed_bytes_utf8 !== undefined) {
      expect([newKey.public_raw_hex, newKey.public_pem]).toContain(c.signed_bytes_utf8);
      msg = Buffer.from(c.signed_bytes_utf8, 'utf8');
    } else {
      expect(c.signed_bytes_hex).toBe(newKey.public_raw_hex);
      msg = Buffer.from(c.signed_bytes_hex, 'hex');
      expect(msg.length).toBe(32);
    }
    await checkSignature(c.old_key, msg, Buffer.from(c.expected_signature_base64, 'base64'));
  });
});

describe('amp_relay_extra.federation_signature', () => {
  it.each(X.federation_signature as Any[])('$id', async (c) => {
    expect(c.signed_string).toBe(`${c.timestamp}.${c.raw_body}`);
    await checkSignature(
      c.provider_key,
      Buffer.from(c.signed_string, 'utf8'),
      Buffer.from(c.expected_signature_base64, 'base64'),
    );
  });
});

const hmacHeader = (secret: string, signed: string) =>
  'sha256=' + createHmac('sha256', secret).update(signed, 'utf8').digest('hex');

describe('amp_relay_extra.webhook_hmac', () => {
  it.each(X.webhook_hmac as Any[])('$id', (c) => {
    expect(c.signed_string).toBe(`${c.timestamp}.${c.raw_body}`);
    expect(hmacHeader(c.webhook_secret, c.signed_string)).toBe(c.expected_header);
    expect(hmacHeader(c.webhook_secret + 'x', c.signed_string)).not.toBe(c.expected_header);
  });
});

describe('amp_relay_extra.mesh_hmac', () => {
  it.each(X.mesh_hmac as Any[])('$id', (c) => {
    expect(c.signed_string).toBe(`${c.timestamp}.${c.raw_body}`);
    expect(hmacHeader(c.shared_secret, c.signed_string)).toBe(c.expected_header);
  });
});

describe('amp_relay_extra.api_key_hash', () => {
  it.each(X.api_key_hash as Any[])('$id', (c) => {
    expect(API_KEY_RE.test(c.api_key)).toBe(c.matches_format);
    expect(createHash('sha256').update(c.api_key, 'utf8').digest('hex')).toBe(c.expected_sha256_hex);
  });
});

describe('amp_relay_extra.user_key', () => {
  it.each(X.user_key as Any[])('$id', (c) => {
    expect(c.user_key.startsWith('uk_')).toBe(true);
    expect(Buffer.from(c.user_key.slice(3), 'base64url').toString('utf8')).toBe(c.expected_owner_id);
    expect('uk_' + Buffer.from(c.expected_owner_id, 'utf8').toString('base64url')).toBe(c.user_key);
  });
});

describe('amp_relay_extra.aid', () => {
  it('identity_document', async () => {
    const c = X.aid.identity_document;
    const doc = c.document_without_signature;
    const k = key(c.key).vector;
    expect(doc.public_key).toBe(k.public_pem);
    expect(doc.fingerprint).toBe(k.fingerprint);
    expect(canonicalJson(doc)).toBe(c.canonical_json);
    const sig = Buffer.from(c.expected_signature_base64, 'base64');
    await checkSignature(c.key, Buffer.from(c.canonical_json, 'utf8'), sig);
    // Transmitted form: the signed document in the vector's key order, signature last.
    const signed = { ...doc, signature: c.expected_signature_base64 };
    expect(Buffer.from(JSON.stringify(signed), 'utf8').toString('base64url')).toBe(c.expected_agent_identity_base64url);
    // Verifier side: decode, drop signature, re-canonicalise.
    const { signature, ...rest } = JSON.parse(
      Buffer.from(c.expected_agent_identity_base64url, 'base64url').toString('utf8'),
    );
    expect(signature).toBe(c.expected_signature_base64);
    expect(canonicalJson(rest)).toBe(c.canonical_json);
  });

  it('token_proof', async () => {
    const c = X.aid.token_proof;
    expect(c.signing_input).toBe(`aid-token-exchange\n${c.timestamp}\n${c.issuer}`);
    const sig = Buffer.from(c.expected_signature_base64, 'base64');
    await checkSignature(c.key, Buffer.from(c.signing_input, 'utf8'), sig);
    const proof = Buffer.concat([sig, Buffer.from(c.timestamp, 'ascii')]).toString('base64url');
    expect(proof).toBe(c.expected_proof_base64url);
    expect(proof).not.toMatch(/=/);
  });

  it('status_proof (text and raw forms)', async () => {
    const c = X.aid.status_proof;
    expect(c.signing_input).toBe(`aid-registration-status\n${c.timestamp}\n${c.issuer}`);
    const sig = Buffer.from(c.expected_signature_base64, 'base64');
    await checkSignature(c.key, Buffer.from(c.signing_input, 'utf8'), sig);
    const text = Buffer.from(c.expected_signature_base64 + c.timestamp, 'ascii').toString('base64url');
    expect(text).toBe(c.expected_text_form_proof);
    const raw = Buffer.concat([sig, Buffer.from(c.timestamp, 'ascii')]).toString('base64url');
    expect(raw).toBe(c.expected_raw_form_proof);
    expect(text).not.toBe(raw);
  });
});
