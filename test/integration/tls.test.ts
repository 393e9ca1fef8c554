// TLS on the server itself (AMP_TLS_CERT / AMP_TLS_KEY: uWS's SSLApp): a self-signed certificate
// made with openssl by the README's own block, then registration, routing and discovery over
// https and a push over wss, with clients that trust only that certificate (node's https and `ws`
// with `ca`, and curl --cacert). Plain HTTP to the TLS port gets no HTTP answer. Bad files are
// refused before any port is opened, by check-config and by serve, with the file named.

import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { type Answer, expectPushOverTls, httpsJson, makeCert } from '../helpers/tls.js';

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
    await expectPushOverTls(ca, { api: `${srv.url}/api/v1`, ws: srv.server.wsUrl }, alice, bob, 'over tls');
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

describe('certificate validity and every PEM block of the cert file', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), ...args], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
      timeout: 20_000,
    });
  const checkConfig = (certPath: string) => cli('check-config', '--tls-cert', certPath, '--tls-key', key);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const csr = () => {
    ossl('req', '-new', '-key', key, '-out', join(dir, 'v.csr'), '-subj', '/CN=localhost');
    return join(dir, 'v.csr');
  };
  /** A certificate for key.pem valid `days` days from now (-1: it expired a day ago). */
  const certForDays = (file: string, days: number) => {
    ossl('x509', '-req', '-in', csr(), '-signkey', key, '-out', join(dir, file), '-days', String(days));
    return join(dir, file);
  };
  /** A certificate for key.pem valid from 2099 (openssl 3.0's x509 has no -not_before: `openssl ca` has -startdate). */
  const futureCert = () => {
    const ca = join(dir, 'ca');
    execFileSync('mkdir', ['-p', ca]);
    writeFileSync(join(ca, 'index.txt'), '');
    writeFileSync(join(ca, 'serial'), '01\n');
    const conf =
      '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nserial=serial\nnew_certs_dir=.\npolicy=p\n' +
      'default_md=sha256\n[p]\ncommonName=supplied\n';
    writeFileSync(join(ca, 'ca.cnf'), conf);
    const out = join(dir, 'future.pem');
    execFileSync(
      'openssl',
      [
        'ca',
        '-batch',
        '-notext',
        '-selfsign',
        '-keyfile',
        key,
        '-in',
        csr(),
        '-out',
        out,
        '-config',
        'ca.cnf',
        '-startdate',
        '20991201000000Z',
        '-enddate',
        '21000101000000Z',
      ],
      { cwd: ca, stdio: 'pipe' },
    );
    return out;
  };

  it('check-config refuses an expired certificate, naming the file and its dates; serve exits 2 before listening', () => {
    const expired = certForDays('expired.pem', -1);
    const r = checkConfig(expired);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `--tls-cert ${expired} has expired \\(valid from \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z to \\d{4}-[\\d-]+T[\\d:]+Z`,
      ),
    );
    const serve = cli(
      'serve',
      '--port',
      '0',
      '--data-dir',
      join(dir, 'exp-data'),
      '--tls-cert',
      expired,
      '--tls-key',
      key,
    );
    expect(serve.status).toBe(2);
    expect(serve.stderr).toContain(`--tls-cert ${expired} has expired`);
    expect(serve.stdout).not.toContain('listening');
  });

  it('check-config refuses a certificate that is not valid yet, with its dates', () => {
    const future = futureCert();
    const r = checkConfig(future);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `--tls-cert ${future} is not valid yet (valid from 2099-12-01T00:00:00Z to 2100-01-01T00:00:00Z`,
    );
  });

  it('check-config parses every certificate block: a corrupt or unterminated one after a good one is refused', () => {
    const good = readFileSync(cert, 'utf8');
    const corrupt = join(dir, 'corrupt-chain.pem');
    writeFileSync(corrupt, `${good}-----BEGIN CERTIFICATE-----\nMIIBbroken+notDER==\n-----END CERTIFICATE-----\n`);
    const r = checkConfig(corrupt);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--tls-cert ${corrupt}: certificate 2 of 2 is not a valid PEM certificate`);
    const serve = cli(
      'serve',
      '--port',
      '0',
      '--data-dir',
      join(dir, 'bad-data'),
      '--tls-cert',
      corrupt,
      '--tls-key',
      key,
    );
    expect(serve.status).toBe(2);
    expect(serve.stdout).not.toContain('listening');
    const cut = join(dir, 'cut-chain.pem');
    writeFileSync(cut, `${good}${good.slice(0, 80)}`);
    const c = checkConfig(cut);
    expect(c.status).toBe(2);
    expect(c.stderr).toContain(`--tls-cert ${cut}: certificate 2 of 2 has no -----END CERTIFICATE----- line`);
    const chain = join(dir, 'good-chain.pem');
    writeFileSync(chain, `${good}${readFileSync(certForDays('second.pem', 30), 'utf8')}`);
    expect(checkConfig(chain).status).toBe(0);
  });

  it('serve warns at start when the certificate expires within 14 days, not otherwise', async () => {
    const soon = certForDays('soon.pem', 3);
    for (const [certPath, warned] of [
      [soon, true],
      [cert, false],
    ] as const) {
      const lines: string[] = [];
      const stream = new Writable({
        write(chunk, _enc, done) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          done();
        },
      });
      const s = await startTestServer({ tlsCert: certPath, tlsKey: key, logger: pino({ level: 'info' }, stream) });
      await s.close();
      const warnings = lines.map((l) => JSON.parse(l)).filter((r) => r.event === 'tls_cert_expires_soon');
      expect(warnings.length, certPath).toBe(warned ? 1 : 0);
      if (warned)
        expect(warnings[0]).toMatchObject({ level: 40, cert: soon, msg: expect.stringMatching(/expires in 3 day/) });
    }
  });
});
