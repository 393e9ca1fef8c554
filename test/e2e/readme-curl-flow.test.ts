// The README's "Try it with curl" block and its keygen block, run as written with bash against a real
// server. Only adaptations: http://localhost:23000 becomes the test server's URL, bash runs with -e and
// pipefail so a failing step fails the test, and npm runs offline (npm_config_offline) so that `npx`
// can only use the repo's own bin, never the registry.
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { call, ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const BLOCK_TIMEOUT_MS = 30_000;

let t: TestServer;
const dirs: string[] = [];

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function bashBlock(id: string, cwd: string): Promise<string> {
  const code = readmeBlock(id).replaceAll('http://localhost:23000', t.url);
  try {
    const { stdout } = await run('bash', ['-e', '-o', 'pipefail', '-c', code], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: cwd,
        NO_PROXY: '127.0.0.1',
        no_proxy: '127.0.0.1',
        npm_config_offline: 'true',
        npm_config_update_notifier: 'false',
      },
      timeout: BLOCK_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    return stdout;
  } catch (e: any) {
    throw new Error(`README block ${id} failed (code ${e.code}):\n${e.stderr}\n${e.stdout}`);
  }
}

describe('README: Try it with curl (block curl-flow)', () => {
  it('registers, sends, polls and acknowledges; the queue is empty afterwards', async () => {
    const work = tempDir('amp-readme-curl-');
    dirs.push(work);
    const lines = (await bashBlock('curl-flow', work)).split('\n').filter(Boolean);
    expect(lines).toHaveLength(4);
    const [registered, routed, pending, acked] = lines.map((l) => JSON.parse(l));
    expect(registered.address).toBe('my-agent@local.aimaestro.local');
    expect(registered.api_key).toMatch(/^amp_live_sk_[0-9a-f]{64}$/);
    expect(routed).toMatchObject({ status: 'queued', method: 'relay' });
    expect(pending.count).toBe(1);
    expect(pending.messages[0]).toMatchObject({
      id: routed.id,
      envelope: { from: 'my-agent@local.aimaestro.local', to: 'my-agent@local.aimaestro.local', subject: 'Hello' },
      payload: { type: 'request', message: 'Can you help me?' },
    });
    expect(acked).toEqual({ acknowledged: true });
    const after = await call('GET', `${t.api}/messages/pending`, { key: registered.api_key });
    expect(after.body).toMatchObject({ messages: [], count: 0 });
  });
});

describe('README: npx amp-relay keygen (block keygen)', () => {
  it('writes a private key and its public key; the public key registers', async () => {
    // Inside the repo, as the README says: npx finds the repo's own amp-relay from there.
    const work = join(ROOT, 'test-results', `readme-keygen-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    dirs.push(work);
    await bashBlock('keygen', work);
    const both = readFileSync(join(work, 'my-agent.pem'), 'utf8');
    expect(both).toMatch(
      /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/,
    );
    const publicPem = readFileSync(join(work, 'public.pem'), 'utf8');
    const derived = createPublicKey(createPrivateKey(both)).export({ format: 'pem', type: 'spki' });
    expect(publicPem).toBe(derived);
    expect(both).toContain(publicPem);
    const reg = await call('POST', `${t.api}/register`, {
      json: { tenant: 'local', name: 'keygen-agent', public_key: publicPem, key_algorithm: 'Ed25519' },
    });
    expect(reg.status).toBe(201);
  });
});
