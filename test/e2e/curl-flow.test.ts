// The brief's curl flow (register with openssl keys, route, inbox, ack) run by bash + curl + jq
// against the real server: test/e2e/fixtures/curl-flow.sh does the calls, this file checks them.

import { execFile } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { call, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./fixtures/curl-flow.sh', import.meta.url));
const SCRIPT_TIMEOUT_MS = 20_000;
const API_KEY = /^amp_live_sk_[0-9a-f]{64}$/;
const MSG_ID = /^msg_[0-9]+_[a-f0-9]{16}$/;

let t: TestServer;
let work: string;
let out: any;
setupOrFailEveryTest(setup);

async function setup() {
  t = await startTestServer();
  work = tempDir('amp-e2e-curl-');
  // No proxy may intercept 127.0.0.1; the scripts talk to the loopback server directly.
  const env = { PATH: process.env.PATH ?? '', HOME: work, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' };
  try {
    const { stdout } = await run('bash', [SCRIPT, t.url, work], {
      env,
      timeout: SCRIPT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    out = JSON.parse(stdout);
  } catch (e: any) {
    throw new Error(
      `curl-flow.sh failed (code ${e.code ?? '?'}, signal ${e.signal ?? '-'}):\n${e.stderr ?? ''}\n${e.stdout ?? ''}\n${e.message}`,
    );
  }
}

afterAll(async () => {
  await t?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('brief curl flow (bash, openssl, curl, jq)', () => {
  it('registers my-agent@local with a PEM pasted with raw newlines', () => {
    const { status, body, public_pem } = out.register.sender;
    expect(status).toBe(201);
    expect(body.address).toBe('my-agent@local.aimaestro.local');
    expect(body.short_address).toBe('my-agent@local.aimaestro.local');
    expect(body.tenant).toBe('local');
    expect(body.api_key).toMatch(API_KEY);
    expect(body.agent_id).toMatch(/^agt_[0-9a-f]{24}$/);
    expect(body.provider).toEqual({
      name: 'aimaestro.local',
      endpoint: `${t.url}/api/v1`,
      route_url: `${t.url}/api/v1/route`,
    });
    // The fingerprint is of the key openssl made (SPKI DER, §5).
    const der = createPublicKey(public_pem).export({ format: 'der', type: 'spki' });
    expect(body.fingerprint).toBe(`SHA256:${createHash('sha256').update(der).digest('base64')}`);
  });

  it('registers the recipient claude@macbook', () => {
    const { status, body } = out.register.recipient;
    expect(status).toBe(201);
    expect(body.address).toBe('claude@macbook.aimaestro.local');
    expect(body.api_key).toMatch(API_KEY);
    expect(body.api_key).not.toBe(out.register.sender.body.api_key);
  });

  it('routes the brief message: queued via relay', () => {
    expect(out.route.status).toBe(200);
    expect(out.route.body).toMatchObject({ status: 'queued', method: 'relay' });
    expect(out.route.body.id).toMatch(MSG_ID);
    expect(out.route.body.thread_id).toBe(out.route.body.id);
    expect(out.id).toBe(out.route.body.id);
  });

  it("lists the message in claude's inbox with the sender's address and payload", () => {
    expect(out.pending.status).toBe(200);
    const { messages, count, remaining } = out.pending.body;
    expect(count).toBe(1);
    expect(remaining).toBe(0);
    expect(messages).toHaveLength(1);
    const [m] = messages;
    expect(m.id).toBe(out.id);
    expect(m.envelope).toMatchObject({
      id: out.id,
      from: 'my-agent@local.aimaestro.local',
      to: 'claude@macbook.aimaestro.local',
      subject: 'Hello',
      priority: 'normal',
      signature: '',
    });
    expect(m.payload).toEqual({ type: 'request', message: 'Can you help me with something?' });
    expect(m.security).toMatchObject({
      signature_verified: false,
      trust_level: 'untrusted',
      sender_authenticated: true,
    });
  });

  it('acknowledges with DELETE ?id= and the inbox is empty afterwards', () => {
    expect(out.ack.status).toBe(200);
    expect(out.ack.body).toEqual({ acknowledged: true });
    expect(out.after.status).toBe(200);
    expect(out.after.body).toMatchObject({ messages: [], count: 0, remaining: 0 });
  });

  it('the sender saw nothing in its own inbox and the ack is remembered', async () => {
    const mine = await call('GET', `${t.api}/messages/pending`, { key: out.register.sender.body.api_key });
    expect(mine.status).toBe(200);
    expect(mine.body.messages).toEqual([]);
    const again = await call('DELETE', `${t.api}/messages/pending?id=${out.id}`, {
      key: out.register.recipient.body.api_key,
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ acknowledged: true, already_acked: true });
  });
});
