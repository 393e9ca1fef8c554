// TLS on the server itself (AMP_TLS_CERT / AMP_TLS_KEY: uWS's SSLApp): a self-signed certificate
// made with openssl by the README's own block, then registration, routing and discovery over
// https and a push over wss, with clients that trust only that certificate (node's https and `ws`
// with `ca`, and curl --cacert). Plain HTTP to the TLS port gets no HTTP answer. Bad files are
// refused before any port is opened, by check-config and by serve, with the file named.

import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { type Answer, httpsJson, makeCert } from '../helpers/tls.js';
import { WsClient } from '../helpers/ws.js';

const run = promisify(execFile);
const dir = tempDir('amp-tls-');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let ca: string;
let srv: TestServer;

/** One HTTPS request trusting only our certificate. */
function https(method: string, url: string, opts: { apiKey?: string; json?: unknown } = {}): Promise<Answer> {
  return httpsJson(ca, method, url, opts);
}

async function registerTls(name: string): Promise<{ address: string; api_key: string }> {
  const { publicKey } = await import('node:crypto').then((c) => c.generateKeyPairSync('ed25519'));
  const pem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const r = await https('POST', `${srv.url}/api/v1/register`, {
    json: { name, tenant: 'default', public_key: pem, key_algorithm: 'Ed25519' },
  });
  expect(r.status).toBe(201);
  return r.body;
}

setupOrFailEveryTest(async () => {
  // README block `tls-cert`, run as written in the temp dir: it writes cert.pem and key.pem there.
  ca = makeCert(dir, readmeBlock('tls-cert')).ca;
  srv = await startTestServer({ tlsCert: cert, tlsKey: key });
});

afterAll(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTPS and WSS with AMP_TLS_CERT / AMP_TLS_KEY', () => {
  it('answers over https, and discovery and registration give https URLs', async () => {
    expect(srv.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(srv.server.wsUrl).toMatch(/^wss:\/\//);
    const disc = await https('GET', `${srv.url}/.well-known/agent-messaging.json`);
    expect(disc.status).toBe(200);
    expect(disc.body.endpoint).toBe(`https://127.0.0.1:${srv.server.port}/api/v1`);
    const a = (await registerTls('tls-alice')) as any;
    // The Host header the client sent (127.0.0.1:port), with the scheme the server listens with.
    expect(a.provider.route_url).toBe(`https://127.0.0.1:${srv.server.port}/api/v1/route`);
  });

  it('routes over https and pushes over wss to a client trusting only this certificate', async () => {
    const alice = await registerTls('tls-a2');
    const bob = await registerTls('tls-b2');
    const ws = new WsClient(
      new WebSocket(srv.server.wsUrl, [], { ca, headers: { Authorization: `Bearer ${bob.api_key}` } }),
    );
    await ws.nextType('connected');
    const sent = await https('POST', `${srv.url}/api/v1/route`, {
      apiKey: alice.api_key,
      json: { to: bob.address, subject: 'over tls', payload: { type: 'notification', message: 'hi' } },
    });
    expect(sent.status).toBe(200);
    const pushed = await ws.nextType('message.new');
    expect(JSON.stringify(pushed)).toContain(sent.body.id);
    await ws.close();
  });

  it('refuses a client that does not trust the certificate', async () => {
    await expect(fetch(`${srv.url}/api/v1/health`)).rejects.toThrow();
  });

  it('gives plain HTTP on the TLS port no HTTP answer', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const s = connect(srv.server.port, '127.0.0.1', () => s.write('GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString('latin1')));
      s.on('close', () => resolve(data));
      s.on('error', () => resolve(data));
      s.setTimeout(15_000, () => reject(new Error('plain HTTP connection neither answered nor closed in 15 s')));
    });
    expect(got).not.toMatch(/^HTTP\/1\.[01] /);
  });

  it('runs the README serve block (npx amp-relay -> node bin/amp-relay.js; port, host, data dir from env)', async () => {
    const block = readmeBlock('tls-serve').replace('npx amp-relay', `node ${join(ROOT, 'bin', 'amp-relay.js')}`);
    const env = { PATH: process.env.PATH ?? '', AMP_HOST: '127.0.0.1', AMP_PORT: '0', AMP_DATA_DIR: join(dir, 'd2') };
    const proc = spawn('bash', ['--norc', '-c', block], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('README serve block did not listen in 20 s')), 20_000);
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          if (!line.includes('"listening"')) return;
          clearTimeout(timer);
          resolve(JSON.parse(line).url);
        });
        proc.on('exit', (code) => reject(new Error(`README serve block exited ${code}`)));
      });
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect((await https('GET', `${url}/api/v1/health`)).body.status).toBe('healthy');
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      if (proc.exitCode === null) process.kill(-proc.pid!, 'SIGTERM');
      await exited;
    }
  });

  it('runs the README curl block against the TLS server (port rewritten)', async () => {
    // Async: the server runs in this process, so a synchronous child would block it.
    const block = readmeBlock('tls-curl').replaceAll('localhost:23000', `localhost:${srv.server.port}`);
    const { stdout } = await run('bash', ['--norc', '-euo', 'pipefail', '-c', block], { cwd: dir, timeout: 15_000 });
    expect(JSON.parse(stdout).status).toBe('healthy');
  });
});

describe('bad TLS settings are configuration errors', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), ...args], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
      timeout: 20_000,
    });

  it('check-config names a missing file', () => {
    const r = cli('check-config', '--tls-cert', join(dir, 'nope.pem'), '--tls-key', key);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--tls-cert ${join(dir, 'nope.pem')} cannot be read (no such file)`);
  });

  it('check-config wants both files', () => {
    const r = cli('check-config', '--tls-cert', cert);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--tls-cert and --tls-key / AMP_TLS_KEY go together');
  });

  it("check-config refuses a key that is not the certificate's, and passes a good pair", () => {
    const r = cli('check-config', '--tls-cert', cert, '--tls-key', cert);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--tls-key ${cert} is not a PEM private key`);
    const ok = cli('check-config', '--tls-cert', cert, '--tls-key', key);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
  });

  it('an encrypted key needs its passphrase, and works with it', async () => {
    const enc = join(dir, 'enc.pem');
    execFileSync('openssl', ['pkcs8', '-topk8', '-in', key, '-out', enc, '-passout', 'pass:correct horse']);
    const r = cli('check-config', '--tls-cert', cert, '--tls-key', enc);
    expect(r.stderr).toContain('is encrypted: set AMP_TLS_KEY_PASSPHRASE');
    const wrong = cli('check-config', '--tls-cert', cert, '--tls-key', enc, '--tls-key-passphrase', 'nope');
    expect(wrong.stderr).toContain('wrong passphrase');
    const s = await startTestServer({ tlsCert: cert, tlsKey: enc, tlsKeyPassphrase: 'correct horse' });
    try {
      expect((await https('GET', `${s.url}/api/v1/health`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('serve with an unreadable file exits 2 before listening, naming the file', () => {
    const dataDir = join(dir, 'serve-data');
    const r = cli(
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--tls-cert',
      '/nonexistent/cert.pem',
      '--tls-key',
      key,
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--tls-cert /nonexistent/cert.pem cannot be read (no such file)');
    expect(r.stdout).not.toContain('listening');
  });
});
