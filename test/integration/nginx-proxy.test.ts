// The README's nginx block (`nginx-proxy`) in a real nginx, in front of the real server: TLS ends
// at nginx, HTTP/1.1 to the server on loopback, WebSocket upgrades passed on, X-Forwarded-* from a
// trusted proxy (AMP_TRUSTED_PROXIES=127.0.0.1) giving https URLs with the client's host and port.
// And why `proxy_http_version 1.1` is in it: without that line nginx speaks HTTP/1.0, which uWS
// never answers, and the client gets a 502.
//
// Adapted from the block as written, and only this: `listen 443 ssl` -> a free loopback port, the
// certificate paths -> a self-signed pair (README block `tls-cert`), the upstream port -> the test
// server's. nginx runs in the foreground as one process (master_process off) with its pid, logs and
// temp files in a temp dir, wrapped in a minimal nginx.conf that includes the block in `http {}`.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { expectPushOverTls, httpsJson, makeCert, type TestCert } from '../helpers/tls.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const START_ATTEMPTS = 100;
const START_POLL_MS = 100;

const dir = tempDir('amp-nginx-');
let tls: TestCert;
let srv: TestServer;
const running: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Does a TLS handshake with our certificate succeed on this port (nginx is up)? */
function handshakes(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, timeout: 1000 }, () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

interface Proxy {
  url: string;
  port: number;
}

/** nginx with the README block (adapted as the header says, then `edit`), answering on https. */
async function startNginx(name: string, edit: (conf: string) => string = (c) => c): Promise<Proxy> {
  if (!NGINX) throw new Error('nginx is not installed (Debian: apt-get install nginx; npm test installs it as root)');
  const prefix = join(dir, name);
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const port = await freePort();
  const block = edit(
    readmeBlock('nginx-proxy')
      .replace('listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`)
      .replace('/etc/letsencrypt/live/amp.example.com/fullchain.pem', tls.cert)
      .replace('/etc/letsencrypt/live/amp.example.com/privkey.pem', tls.key)
      .replace('http://127.0.0.1:23000', `http://127.0.0.1:${srv.server.port}`),
  );
  writeFileSync(join(prefix, 'amp.conf'), block);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `  ${t}_temp_path ${join(prefix, 'tmp', t)};`)
    .join('\n');
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;\nmaster_process off;\npid ${join(prefix, 'nginx.pid')};\nerror_log ${join(prefix, 'error.log')} warn;\n` +
      `events { worker_connections 256; }\nhttp {\n  access_log off;\n${temp}\n  include ${join(prefix, 'amp.conf')};\n}\n`,
  );
  const proc = spawn(NGINX, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const url = `https://127.0.0.1:${port}`;
  // nginx says nothing when it is ready: poll its port, a bounded number of times.
  for (let i = 0; i < START_ATTEMPTS; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited ${proc.exitCode}: ${stderr}`);
    if (await handshakes(port)) return { url, port };
    await new Promise((r) => setTimeout(r, START_POLL_MS));
  }
  throw new Error(`nginx did not answer on ${url}: ${stderr}`);
}

setupOrFailEveryTest(async () => {
  tls = makeCert(dir, readmeBlock('tls-cert'));
  srv = await startTestServer({ trustedProxies: ['127.0.0.1'] });
});

afterAll(async () => {
  for (const p of running) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the README nginx block in front of the server', () => {
  let proxy: Proxy;

  it('serves discovery with https URLs of the host and port the client used', async () => {
    proxy = await startNginx('main');
    const d = await httpsJson(tls.ca, 'GET', `${proxy.url}/.well-known/agent-messaging.json`);
    expect(d.status).toBe(200);
    expect(d.body.endpoint).toBe(`https://127.0.0.1:${proxy.port}/api/v1`);
  });

  it('registers and routes over https, and pushes over wss through the proxy', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const reg = async (name: string) => {
      const pem = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }) as string;
      const r = await httpsJson(tls.ca, 'POST', `${proxy.url}/api/v1/register`, {
        json: { name, tenant: 'default', public_key: pem, key_algorithm: 'Ed25519' },
      });
      expect(r.status).toBe(201);
      expect(r.body.provider.route_url).toBe(`https://127.0.0.1:${proxy.port}/api/v1/route`);
      return r.body as { address: string; api_key: string };
    };
    const alice = await reg('nginx-alice');
    const bob = await reg('nginx-bob');
    const urls = { api: `${proxy.url}/api/v1`, ws: `wss://127.0.0.1:${proxy.port}/v1/ws` };
    await expectPushOverTls(tls.ca, urls, alice, bob, 'via nginx');
  });

  it('without `proxy_http_version 1.1` nginx speaks HTTP/1.0, uWS never answers, the client gets 502', async () => {
    const line = /^\s*proxy_http_version 1\.1;.*\n/m;
    expect(readmeBlock('nginx-proxy')).toMatch(line);
    const bad = await startNginx('http10', (c) => c.replace(line, ''));
    const r = await httpsJson(tls.ca, 'GET', `${bad.url}/api/v1/health`, { timeoutMs: 25_000 });
    expect(r.status).toBe(502);
    const log = readFileSync(join(dir, 'http10', 'error.log'), 'utf8');
    expect(log).toMatch(/upstream prematurely closed connection/);
  }, 60_000);
});
