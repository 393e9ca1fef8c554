// fetchChecked (src/outbound/fetch-checked.ts) against real HTTP and HTTPS servers on loopback:
// requests reach the checked address (no second lookup; Host and the TLS certificate keep the
// name), the connect and response timeouts, the body bound, redirects (followed to an
// allow-listed server, refused to 169.254.169.254, to a loopback address outside the allow list,
// to a non-canonical spelling, from https to http, past the limit), and `localhost` refused
// without the allow list. The HTTPS certificate is self-signed by openssl here and trusted via `ca`.
// Refusals happen before any connection: the target servers' hit counters prove nothing was sent.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hmacRequestHeader, verifyHmacRequestHeader } from '../../src/crypto/request-signing.js';
import { EMPTY_ALLOW_LIST, parseAllowList } from '../../src/outbound/allow-list.js';
import { fetchChecked, OutboundFailure, type FetchCheckedOptions } from '../../src/outbound/fetch-checked.js';
import { type ResolvedAddress, UrlRefusedError } from '../../src/outbound/ssrf.js';

interface Seen {
  method: string;
  url: string;
  host: string;
  body: string;
  headers: IncomingMessage['headers'];
}

type Routes = Record<string, (req: IncomingMessage, res: ServerResponse, body: string) => void>;

/** A server's requests in order, and a router; unknown paths answer 404. */
function handler(seen: Seen[], routes: Routes) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, host: req.headers.host!, body, headers: req.headers });
      const route = routes[(req.url ?? '').split('?')[0]];
      if (route) route(req, res, body);
      else res.writeHead(404).end('not found');
    });
  };
}

function listen(server: Server | NetServer, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as { port: number }).port));
  });
}

const redirect = (status: number, location: () => string) => (_q: IncomingMessage, res: ServerResponse) =>
  res.writeHead(status, { location: location() }).end();
const echo = (req: IncomingMessage, res: ServerResponse, body: string) =>
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, body }));

const dir = mkdtempSync(join(tmpdir(), 'amp-outbound-'));
const seenA: Seen[] = [];
const seenB: Seen[] = [];
const seenOther: Seen[] = [];
const seenTls: Seen[] = [];
const held: ServerResponse[] = [];
const servers: Array<Server | NetServer> = [];
const rawSockets: Socket[] = [];
let portA = 0;
let portB = 0;
let portOther = 0;
let portTls = 0;
let portLocalTls = 0;
let portSilent = 0;
let cert = '';
const A = (path: string) => `http://127.0.0.1:${portA}${path}`;
const B = (path: string) => `http://127.0.0.1:${portB}${path}`;
const TLS = (path: string) => `https://127.0.0.1:${portTls}${path}`;
const loopback = parseAllowList('127.0.0.1/32').allow;

const routesA: Routes = {
  '/ok': echo,
  '/big': (_q, res) => res.writeHead(200).end(Buffer.alloc(1024 * 1024, 0x61)),
  '/hang': (_q, res) => void held.push(res),
  '/drip': (_q, res) => {
    res.writeHead(200, { 'content-length': '100' }).write('x');
    held.push(res);
  },
  '/verify': (req, res, body) => {
    const sig = req.headers['x-amp-signature'] as string | undefined;
    const ok = verifyHmacRequestHeader('whsec_test', req.headers['x-amp-timestamp'] as string, body, sig);
    res.writeHead(ok ? 204 : 401).end();
  },
  '/cut': (_q, res) => {
    res.writeHead(200, { 'content-length': '100' }).write('only ten b', () => res.socket?.destroy());
  },
  '/to-tls': redirect(301, () => TLS('/ok')),
  '/to-b': redirect(307, () => B('/ok')),
  '/to-b-301': redirect(301, () => B('/ok')),
  '/to-b-302': redirect(302, () => B('/ok')),
  '/to-b-303': redirect(303, () => B('/ok')),
  '/to-b-then-b': redirect(302, () => B('/to-a-ok')),
  '/loop': redirect(302, () => '/loop'),
  '/to-metadata': redirect(302, () => 'http://169.254.169.254/latest/meta-data/'),
  '/to-other-loopback': redirect(302, () => `http://127.0.0.2:${portOther}/ok`),
  '/to-non-canonical': redirect(302, () => `http://0x7f.1:${portB}/ok`),
  '/to-scheme-relative': redirect(302, () => `//127.0.0.1:${portB}/ok`),
  '/to-named': redirect(302, () => `http://named.test:${portB}/ok`),
};
const routesB: Routes = { '/ok': echo, '/to-a-ok': redirect(302, () => A('/ok')) };

function makeCert() {
  const key = join(dir, 'key.pem');
  const crt = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key]
      .concat(['-out', crt, '-days', '2', '-subj', '/CN=localhost'])
      .concat(['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']),
    { stdio: 'pipe' },
  );
  return { key: readFileSync(key), cert: readFileSync(crt, 'utf8') };
}

beforeAll(async () => {
  const tls = makeCert();
  cert = tls.cert;
  const a = createHttpServer(handler(seenA, routesA));
  const b = createHttpServer(handler(seenB, routesB));
  const other = createHttpServer(handler(seenOther, { '/ok': echo }));
  const tlsRoutes: Routes = { '/ok': echo, '/to-http': redirect(302, () => B('/ok')) };
  const s = createHttpsServer({ key: tls.key, cert: tls.cert }, handler(seenTls, tlsRoutes));
  const local = createHttpsServer({ key: tls.key, cert: tls.cert }, handler(seenTls, tlsRoutes));
  // Accepts TCP and never answers the TLS handshake: the connect timeout covers TLS.
  const silent = createNetServer((sock) => void rawSockets.push(sock));
  servers.push(a, b, other, s, local, silent);
  [portA, portB, portOther, portTls, portLocalTls, portSilent] = await Promise.all([
    listen(a, '127.0.0.1'),
    listen(b, '127.0.0.1'),
    listen(other, '127.0.0.2'),
    listen(s, '127.0.0.1'),
    listen(local, 'localhost'),
    listen(silent, '127.0.0.1'),
  ]);
});

afterAll(async () => {
  for (const r of held) r.destroy();
  for (const s of rawSockets) s.destroy();
  for (const s of servers) if ('closeAllConnections' in s) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

async function refusedBy(url: string, opts: FetchCheckedOptions): Promise<UrlRefusedError> {
  const e = await fetchChecked(url, opts).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `${url} should be refused`).toBeInstanceOf(UrlRefusedError);
  return e as UrlRefusedError;
}

async function failedWith(url: string, opts: FetchCheckedOptions): Promise<OutboundFailure> {
  const e = await fetchChecked(url, opts).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `${url} should fail`).toBeInstanceOf(OutboundFailure);
  return e as OutboundFailure;
}

describe('requests', () => {
  it('POSTs the body and headers to an allow-listed http server; a signed webhook verifies there', async () => {
    const body = JSON.stringify({ envelope: { id: 'msg_1' }, payload: { message: 'hé' } });
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = { 'content-type': 'application/json', 'x-amp-timestamp': ts };
    const signed = { ...headers, 'x-amp-signature': hmacRequestHeader('whsec_test', ts, body) };
    const r = await fetchChecked(A('/verify'), { allow: loopback, method: 'POST', headers: signed, body });
    expect(r.status).toBe(204);
    const forged = { ...headers, 'x-amp-signature': hmacRequestHeader('whsec_other', ts, body) };
    expect((await fetchChecked(A('/verify'), { allow: loopback, method: 'POST', headers: forged, body })).status).toBe(
      401,
    );
    const seen = seenA.filter((s) => s.url === '/verify');
    expect(seen[0]).toMatchObject({ method: 'POST', body, host: `127.0.0.1:${portA}` });
    expect(seen[0].headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('connects to the address the check resolved: one lookup per hop, Host keeps the name', async () => {
    const lookups: string[] = [];
    // A resolver that would send a second lookup elsewhere (127.0.0.2, DNS rebinding).
    const resolver = async (name: string): Promise<ResolvedAddress[]> => {
      lookups.push(name);
      return [{ address: lookups.length === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    };
    const allow = parseAllowList('named.test').allow;
    const before = seenOther.length;
    const r = await fetchChecked(`http://named.test:${portA}/ok`, { allow, resolver });
    expect(r).toMatchObject({ status: 200, address: '127.0.0.1', redirects: 0 });
    expect(lookups).toEqual(['named.test']);
    expect(seenA.at(-1)).toMatchObject({ url: '/ok', host: `named.test:${portA}` });
    expect(seenOther.length).toBe(before);
  });

  it('verifies the TLS certificate against the name while connecting to the checked address', async () => {
    const allow = parseAllowList('localhost').allow;
    const r = await fetchChecked(`https://localhost:${portLocalTls}/ok`, { allow, ca: cert });
    expect(r.status).toBe(200);
    expect(seenTls.at(-1)?.host).toBe(`localhost:${portLocalTls}`);
    // Without the CA the self-signed certificate is refused: a network failure, nothing answered.
    const e = await failedWith(`https://localhost:${portLocalTls}/ok`, { allow });
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/self[- ]signed/i);
  });

  it('refuses localhost without the allow list, before connecting', async () => {
    const before = seenTls.length;
    const e = await refusedBy(`https://localhost:${portLocalTls}/ok`, { allow: EMPTY_ALLOW_LIST, ca: cert });
    expect(e.reason).toBe('refused_address');
    expect(e.message).toContain("'localhost' resolves to");
    expect((await refusedBy(A('/ok'), { allow: EMPTY_ALLOW_LIST })).reason).toBe('refused_address');
    expect((await refusedBy(TLS('/ok'), { allow: EMPTY_ALLOW_LIST, ca: cert })).reason).toBe('refused_address');
    expect(seenTls.length).toBe(before);
  });

  it('reaches an IPv6 literal (brackets in the URL, none on the wire)', async () => {
    const v6 = createHttpServer(handler([], { '/ok': echo }));
    const port = await listen(v6, '::1');
    try {
      const allow = parseAllowList('::1').allow;
      const r = await fetchChecked(`http://[::1]:${port}/ok`, { allow });
      expect(r).toMatchObject({ status: 200, address: '::1' });
      expect((await refusedBy(`http://[::1]:${port}/ok`, { allow: loopback })).reason).toBe('refused_address');
    } finally {
      await new Promise((r) => v6.close(r));
    }
  });

  it('a closed port is a network failure (retry)', async () => {
    const closed = createNetServer();
    const port = await listen(closed, '127.0.0.1');
    await new Promise((r) => closed.close(r));
    const e = await failedWith(`http://127.0.0.1:${port}/`, { allow: loopback });
    expect(e).toMatchObject({ kind: 'network', url: `http://127.0.0.1:${port}/` });
    expect(e.message).toContain('ECONNREFUSED');
  });
});

describe('timeouts and the body bound', () => {
  it('connect timeout: a TLS handshake that never completes', async () => {
    const url = `https://127.0.0.1:${portSilent}/`;
    const e = await failedWith(url, { allow: loopback, ca: cert, connectTimeoutMs: 300 });
    expect(e).toMatchObject({ kind: 'connect_timeout', message: 'no connection within 300 ms' });
  });

  it('response timeout: no answer, and a body that stops halfway', async () => {
    const opts = { allow: loopback, responseTimeoutMs: 300 };
    expect((await failedWith(A('/hang'), opts)).kind).toBe('response_timeout');
    const drip = await failedWith(A('/drip'), opts);
    expect(drip).toMatchObject({ kind: 'response_timeout', message: 'no complete response within 300 ms' });
  });

  it('a response cut short by the server is a network failure', async () => {
    const e = await failedWith(A('/cut'), { allow: loopback });
    expect(e.kind).toBe('network');
    expect(e.message).toContain('response cut short');
  });

  it('the body is cut at the bound (default 64 KiB) and flagged', async () => {
    const small = await fetchChecked(A('/big'), { allow: loopback, maxBodyBytes: 1000 });
    expect(small).toMatchObject({ status: 200, truncated: true });
    expect(small.body.length).toBe(1000);
    const dflt = await fetchChecked(A('/big'), { allow: loopback });
    expect(dflt.body.length).toBe(64 * 1024);
    const whole = await fetchChecked(A('/ok'), { allow: loopback });
    expect(whole.truncated).toBe(false);
    expect(JSON.parse(whole.body.toString())).toEqual({ method: 'GET', body: '' });
  });
});

describe('redirects', () => {
  it('307 to another allow-listed server is followed with the same method and body', async () => {
    const r = await fetchChecked(A('/to-b'), { allow: loopback, method: 'POST', body: 'hello' });
    expect(r).toMatchObject({ status: 200, url: B('/ok'), redirects: 1 });
    expect(JSON.parse(r.body.toString())).toEqual({ method: 'POST', body: 'hello' });
  });

  it('301, 302 and 303 also repeat the POST with its body and headers (never a bodiless GET)', async () => {
    const headers = { 'content-type': 'application/json' };
    for (const path of ['/to-b-301', '/to-b-302', '/to-b-303']) {
      const r = await fetchChecked(A(path), { allow: loopback, method: 'POST', headers, body: '{"n":1}' });
      expect([path, r.status, JSON.parse(r.body.toString())]).toEqual([path, 200, { method: 'POST', body: '{"n":1}' }]);
      expect(seenB.at(-1)?.headers['content-type']).toBe('application/json');
    }
  });

  it('two redirects are followed, a third is refused', async () => {
    const r = await fetchChecked(A('/to-b-then-b'), { allow: loopback });
    expect(r).toMatchObject({ status: 200, url: A('/ok'), redirects: 2 });
    const before = seenA.filter((s) => s.url === '/loop').length;
    expect((await refusedBy(A('/loop'), { allow: loopback })).reason).toBe('too_many_redirects');
    expect(seenA.filter((s) => s.url === '/loop').length - before).toBe(3);
    expect((await refusedBy(A('/to-b-then-b'), { allow: loopback, maxRedirects: 1 })).reason).toBe(
      'too_many_redirects',
    );
  });

  it('a scheme-relative Location is resolved and checked', async () => {
    expect((await fetchChecked(A('/to-scheme-relative'), { allow: loopback })).url).toBe(B('/ok'));
  });

  it('to 169.254.169.254 is refused, not followed', async () => {
    const e = await refusedBy(A('/to-metadata'), { allow: loopback });
    expect(e.reason).toBe('refused_address');
    expect(e.url).toBe('http://169.254.169.254/latest/meta-data/');
    expect(e.message).toContain('169.254.0.0/16');
  });

  it('to a loopback address outside the allow list is refused: that server sees nothing', async () => {
    const e = await refusedBy(A('/to-other-loopback'), { allow: loopback });
    expect(e.reason).toBe('refused_address');
    expect(e.message).toContain('127.0.0.2');
    expect(seenOther).toEqual([]);
    // The same server is reachable when allow-listed (so the refusal above is the rule's doing).
    const wide = parseAllowList('127.0.0.0/8').allow;
    expect((await fetchChecked(A('/to-other-loopback'), { allow: wide })).status).toBe(200);
    expect(seenOther).toHaveLength(1);
  });

  it('to a non-canonical spelling of an allow-listed address is refused', async () => {
    const before = seenB.length;
    expect((await refusedBy(A('/to-non-canonical'), { allow: loopback })).reason).toBe('non_canonical_ip');
    expect(seenB.length).toBe(before);
  });

  it('a redirect to a name is looked up and checked again', async () => {
    const lookups: string[] = [];
    const resolverTo =
      (address: string) =>
      async (name: string): Promise<ResolvedAddress[]> => {
        lookups.push(name);
        return [{ address, family: 4 }];
      };
    const e = await refusedBy(A('/to-named'), { allow: loopback, resolver: resolverTo('127.0.0.2') });
    expect(e.reason).toBe('refused_address');
    expect(e.message).toContain("'named.test' resolves to 127.0.0.2");
    const r = await fetchChecked(A('/to-named'), { allow: loopback, resolver: resolverTo('127.0.0.1') });
    expect(r).toMatchObject({ status: 200, address: '127.0.0.1', url: `http://named.test:${portB}/ok` });
    expect(lookups).toEqual(['named.test', 'named.test']);
  });

  it('from http to https is followed', async () => {
    const r = await fetchChecked(A('/to-tls'), { allow: loopback, ca: cert });
    expect(r).toMatchObject({ status: 200, url: TLS('/ok'), redirects: 1 });
  });

  it('from https to http is refused, even to an allow-listed server', async () => {
    const before = seenB.length;
    const r = await fetchChecked(TLS('/ok'), { allow: loopback, ca: cert });
    expect(r.status).toBe(200);
    const e = await refusedBy(TLS('/to-http'), { allow: loopback, ca: cert });
    expect(e.reason).toBe('https_to_http');
    expect(seenB.length).toBe(before);
  });
});
