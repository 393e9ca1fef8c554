// Signatures made with external tools only (jq, openssl, base64), as the reference CLI makes them
// (spec §10), verified by the real server at route time (§11) and refused when any signed field
// is changed. The bash side is test/e2e/fixtures/openssl-sign.sh.

import { execFile } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { payloadHash } from '../../proto/index.js';
import {
  call,
  register,
  route,
  startTestServer,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./fixtures/openssl-sign.sh', import.meta.url));
const SCRIPT_TIMEOUT_MS = 15_000;
const SENDER = 'my-agent@macbook.aimaestro.local';
const RECIPIENT = 'claude@macbook.aimaestro.local';

let t: TestServer;
let work: string;
let senderKey: string; // API key
let senderHex: string; // raw Ed25519 public key, lowercase hex
let claude: Registered;

async function sh(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('bash', [SCRIPT, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: work },
      timeout: SCRIPT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    return stdout;
  } catch (e: any) {
    throw new Error(
      `openssl-sign.sh ${args[0]} failed (code ${e.code ?? '?'}, signal ${e.signal ?? '-'}): ${e.stderr ?? ''} ${e.message}`,
    );
  }
}

interface Signed {
  to: string;
  subject: string;
  priority: string;
  in_reply_to: string | null;
  payload: Record<string, unknown>;
}

/** Signature by openssl over the canonical string of `m` (to as given, from = SENDER). */
async function opensslSign(
  m: Signed,
  signedTo = m.to,
): Promise<{ signature: string; payload_hash: string; canonical: string }> {
  const out = await sh(
    'sign',
    work,
    SENDER,
    signedTo,
    m.subject,
    m.priority,
    m.in_reply_to ?? '',
    JSON.stringify(m.payload),
  );
  return JSON.parse(out);
}

/** The recipient's re-verification of a stored message with openssl and the sender's public.pem. */
async function opensslVerify(item: any): Promise<string> {
  const e = item.envelope;
  const out = await sh(
    'verify',
    work,
    e.from,
    e.to,
    e.subject,
    e.priority ?? 'normal',
    e.in_reply_to ?? '',
    JSON.stringify(item.payload),
    e.signature,
  );
  return out.trim();
}

const base = (): Signed => ({
  to: RECIPIENT,
  subject: 'Hello',
  priority: 'normal',
  in_reply_to: null,
  payload: { type: 'request', message: 'Can you help me with something?', context: null },
});

/** The CLI's flat body (spec §24 CLI-6): nulls for in_reply_to, thread_id and payload.context. */
const flatBody = (m: Signed, signature: string) => ({
  to: m.to,
  subject: m.subject,
  priority: m.priority,
  in_reply_to: m.in_reply_to,
  thread_id: null,
  signature,
  payload: m.payload,
});

async function pending(): Promise<any[]> {
  const r = await call('GET', `${t.api}/messages/pending?limit=100`, { key: claude.api_key });
  expect(r.status).toBe(200);
  return r.body.messages;
}

setupOrFailEveryTest(setup);

async function setup() {
  t = await startTestServer();
  work = tempDir('amp-e2e-openssl-');
  const pem = await sh('keygen', work);
  expect(pem).toBe(readFileSync(join(work, 'public.pem'), 'utf8'));
  const der = createPublicKey(pem).export({ format: 'der', type: 'spki' });
  senderHex = der.subarray(der.length - 32).toString('hex');
  const reg = await call('POST', `${t.api}/register`, {
    json: { tenant: 'macbook', name: 'my-agent', public_key: pem, key_algorithm: 'Ed25519' },
  });
  expect(reg.status).toBe(201);
  expect(reg.body.address).toBe(SENDER);
  senderKey = reg.body.api_key;
  claude = await register(t.api, 'claude', 'macbook');
  expect(claude.address).toBe(RECIPIENT);
}

afterAll(async () => {
  await t?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('openssl-signed route (spec §10, §11, §24 CLI-6/CLI-8)', () => {
  it('jq -cS payload hash equals the provider canonical hash (context: null kept)', async () => {
    const m = base();
    const s = await opensslSign(m);
    expect(s.payload_hash).toBe(payloadHash(m.payload));
    expect(s.canonical).toBe(`${SENDER}|${RECIPIENT}|Hello|normal||${s.payload_hash}`);
    expect(Buffer.from(s.signature, 'base64')).toHaveLength(64);
  });

  it('is accepted, stored as verified, and re-verifies with openssl from the stored fields', async () => {
    const m = base();
    const { signature } = await opensslSign(m);
    const r = await route(t.api, senderKey, flatBody(m, signature));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'queued', method: 'relay' });
    const item = (await pending()).find((x) => x.id === r.body.id);
    expect(item).toBeDefined();
    expect(item.security).toEqual({
      trust_level: 'verified',
      signature_verified: true,
      sender_authenticated: true,
      injection_flags: [],
    });
    expect(item.envelope).toMatchObject({
      from: SENDER,
      to: RECIPIENT,
      subject: 'Hello',
      priority: 'normal',
      signature,
    });
    expect(item.envelope).not.toHaveProperty('in_reply_to');
    expect(item.payload).toEqual(m.payload);
    expect(item.sender_public_key).toBe(senderHex);
    expect(item.sender_public_key).toMatch(/^[0-9a-f]{64}$/);
    expect(await opensslVerify(item)).toBe('ok');
  });

  it('the openssl verifier itself rejects a stored message with a changed field', async () => {
    const [item] = await pending();
    expect(await opensslVerify({ ...item, envelope: { ...item.envelope, subject: 'Hello!' } })).toBe('bad');
  });
});

describe('tampering after signing → 403 signature_invalid, nothing queued', () => {
  const cases: Array<[string, (m: Signed) => Signed]> = [
    ['payload.message', (m) => ({ ...m, payload: { ...m.payload, message: 'Can you help me with something else?' } })],
    ['subject', (m) => ({ ...m, subject: 'Hello!' })],
    ['priority', (m) => ({ ...m, priority: 'urgent' })],
    ['in_reply_to', (m) => ({ ...m, in_reply_to: 'msg_1767225600_abcdef0123456789' })],
    ['payload.context (null → object)', (m) => ({ ...m, payload: { ...m.payload, context: { repo: 'x' } } })],
    ['payload.context (removed)', (m) => ({ ...m, payload: { type: 'request', message: m.payload.message } })],
    ['payload.type', (m) => ({ ...m, payload: { ...m.payload, type: 'task' } })],
  ];

  it.each(cases)('changed %s', async (_field, tamper) => {
    const m = base();
    const { signature } = await opensslSign(m);
    const before = (await pending()).length;
    const r = await route(t.api, senderKey, flatBody(tamper(m), signature));
    expect(r.status).toBe(403);
    expect(r.body.error).toBe('signature_invalid');
    expect(r.body.details).toMatchObject({ from: SENDER });
    expect((await pending()).length).toBe(before);
  });

  it('the untampered body with its signature still goes through (control)', async () => {
    const m = { ...base(), subject: 'Hello (control)' };
    const { signature } = await opensslSign(m);
    const before = (await pending()).length;
    const r = await route(t.api, senderKey, flatBody(m, signature));
    expect(r.status).toBe(200);
    expect((await pending()).length).toBe(before + 1);
    // Sending the same signed message again is a replay: the first answer, nothing new queued.
    const again = await route(t.api, senderKey, flatBody(m, signature));
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(r.body.id);
    expect((await pending()).length).toBe(before + 1);
  });

  it.each([
    ['32 bytes instead of 64', randomBytes(32).toString('base64')],
    ['65 bytes', randomBytes(65).toString('base64')],
    ['not base64', '!!!not-a-signature!!!'],
  ])('a signature of %s → 400 invalid_field signature', async (_label, signature) => {
    const before = (await pending()).length;
    const r = await route(t.api, senderKey, flatBody(base(), signature));
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'signature' });
    expect((await pending()).length).toBe(before);
  });
});

describe('`to` as received is a signing candidate (spec §11 item 2, §25 #3)', () => {
  it.each([
    ['bare name', 'claude'],
    ['name@tenant', 'claude@macbook'],
    ['upper case', 'CLAUDE@MACBOOK.AIMAESTRO.LOCAL'],
  ])('%s, signed as sent → verified, envelope.to = the string that verified', async (_label, to) => {
    const m = { ...base(), to };
    const { signature } = await opensslSign(m);
    const r = await route(t.api, senderKey, flatBody(m, signature));
    expect(r.status).toBe(200);
    const item = (await pending()).find((x) => x.id === r.body.id);
    expect(item.security).toMatchObject({ signature_verified: true, trust_level: 'verified' });
    expect(item.envelope).toMatchObject({ from: SENDER, to, signature });
    expect(await opensslVerify(item)).toBe('ok');
  });

  it('bare name sent, signed over the expanded address → verified, envelope.to expanded', async () => {
    const m = { ...base(), to: 'claude' };
    const { signature } = await opensslSign(m, RECIPIENT);
    const r = await route(t.api, senderKey, flatBody(m, signature));
    expect(r.status).toBe(200);
    const item = (await pending()).find((x) => x.id === r.body.id);
    expect(item.security.signature_verified).toBe(true);
    expect(item.envelope.to).toBe(RECIPIENT);
    expect(await opensslVerify(item)).toBe('ok');
  });

  it('signed over another recipient → 403 signature_invalid', async () => {
    const m = base();
    const { signature } = await opensslSign(m, 'someone@macbook.aimaestro.local');
    const before = (await pending()).length;
    const r = await route(t.api, senderKey, flatBody(m, signature));
    expect(r.status).toBe(403);
    expect(r.body.error).toBe('signature_invalid');
    expect((await pending()).length).toBe(before);
  });
});
