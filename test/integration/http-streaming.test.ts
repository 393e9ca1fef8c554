// Streaming request bodies and file replies over the real uWS transport (issue 15): test routes on a
// Router behind attachHttp, served by a real HttpServer on loopback; real clients (fetch, curl, raw
// sockets). Checks that a 25 MiB body or file is never held whole: the socket stops reading while a
// sink waits, and a file is read from disk only as fast as the client takes it.
//
// Two checks are about something NOT happening (no more bytes read while a sink is blocked, no more
// of the file read while the client does not read): they watch for a bounded window (WINDOW_MS)
// and then release; without the backpressure the whole 25 MiB moves through loopback within it.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmpError } from '../../proto/index.js';
import { HOLD_LIMIT } from '../../src/transport/http/body-stream.js';
import { attachHttp } from '../../src/transport/http/respond.js';
import { type GuardDeps, RouteTable } from '../../src/transport/http/route-table.js';
import { type HttpReply, type HttpRequest, Router } from '../../src/transport/http/router.js';
import { HttpServer } from '../../src/transport/listen.js';
import { waitFor } from '../helpers/events.js';
import { exchange, rawRequest } from '../helpers/raw-http.js';

const MiB = 1024 * 1024;
const BIG = 25 * MiB;
const WINDOW_MS = 500;
/** uWS reads at most this much per socket read (LIBUS_RECV_BUFFER_LENGTH): the slack after a pause. */
const UWS_READ = 512 * 1024;

const ev = new EventEmitter();
const observed: Array<{ method: string; route: string; status: number }> = [];
const inFlight = {
  count: 0,
  begin() {
    this.count++;
  },
  end() {
    this.count--;
    ev.emit('inflight', this.count);
  },
};

let server: HttpServer;
let base: string;
let port: number;
let dir: string;
let big: Buffer;
let bigPath: string;

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

class Gate {
  open!: () => void;
  readonly wait = new Promise<void>((r) => {
    this.open = r;
  });
}
let blockGate = new Gate();
let lateGate = new Gate();

/** A sink that hashes and writes to a file, tracking how far the reader got ahead of it. */
async function toFile(req: HttpRequest): Promise<HttpReply> {
  const hash = createHash('sha256');
  const fh: FileHandle = await open(join(dir, 'upload.bin'), 'w');
  let sunk = 0;
  let maxLead = 0;
  try {
    const size = await req.body.pipe(async (chunk) => {
      maxLead = Math.max(maxLead, req.body.received - sunk);
      hash.update(chunk);
      await fh.write(chunk);
      sunk += chunk.length;
    });
    ev.emit('uploaded', size);
    return { status: 200, body: { size, sha256: hash.digest('hex'), maxLead } };
  } finally {
    await fh.close();
  }
}

function routes(r: Router): void {
  const stream = { streamBody: true };
  r.add('GET', '/ping', () => ({ status: 200, body: 'pong', headers: { 'Content-Type': 'text/plain' } }));
  r.add('PUT', '/upload', toFile, stream);
  r.add(
    'PUT',
    '/blocked',
    async (req) => {
      const hash = createHash('sha256');
      let calls = 0;
      const size = await req.body.pipe((chunk) => {
        calls++;
        hash.update(chunk);
        if (calls > 1) return;
        ev.emit('blocked', req);
        return blockGate.wait;
      });
      return { status: 200, body: { size, sha256: hash.digest('hex'), calls } };
    },
    stream,
  );
  r.add(
    'PUT',
    '/late',
    async (req) => {
      ev.emit('late', req);
      await lateGate.wait;
      return toFile(req);
    },
    stream,
  );
  r.add(
    'PUT',
    '/refuse',
    async (req) => {
      let total = 0;
      await req.body.pipe((chunk) => {
        total += chunk.length;
        if (total > MiB) throw new AmpError('invalid_request', 'more than 1 MiB');
      });
      return { status: 200, body: { total } };
    },
    stream,
  );
  r.add(
    'PUT',
    '/abortable',
    async (req) => {
      try {
        return { status: 200, body: { size: await req.body.pipe(() => void ev.emit('chunk')) } };
      } catch (e) {
        ev.emit('pipe-failed', e);
        throw e;
      }
    },
    stream,
  );
  // Refuses at once, without reading the body (as a guard does).
  r.add('PUT', '/early', () => ({ status: 403, body: { error: 'forbidden', message: 'no' } }), stream);
  r.add('PUT', '/empty', async (req) => ({ status: 200, body: { size: await req.body.pipe(() => {}) } }), stream);
  r.add('PUT', '/buffered', async (req) => {
    try {
      await req.body.pipe(() => {});
      return { status: 200, body: { piped: true } };
    } catch (e) {
      return { status: 200, body: { refused: (e as Error).message } };
    }
  });
  r.add('GET', '/file', fileRoute);
  // Through the route table (guard `none`: it uses no dependency): a streamBody route is not held to
  // MAX_REQUEST_BYTES and its handler is not made to wait for a buffered body; the same route
  // without the option still is.
  const t = new RouteTable(r, {} as GuardDeps);
  t.api('PUT', '/t/stream', { auth: 'none' }, toFile, { streamBody: true });
  t.api('PUT', '/t/buffered', { auth: 'none' }, async (req) => ({
    status: 200,
    body: { n: (await req.body.text()).length },
  }));
}

async function fileRoute(req: HttpRequest): Promise<HttpReply> {
  const name = req.query.get('name') ?? 'big.bin';
  const start = Number(req.query.get('start') ?? 0);
  const end = Number(req.query.get('end') ?? BIG - 1);
  const ranged = req.query.has('start');
  return {
    status: ranged ? 206 : 200,
    headers: {
      'Content-Type': 'application/octet-stream',
      // As a handler may set it: uWS writes its own from the range, this one is dropped (one header).
      'Content-Length': String(end - start + 1),
      ...(ranged ? { 'Content-Range': `${start}-${end}` } : {}),
    },
    file: { path: join(dir, name), start, end },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'amp-streaming-'));
  big = randomBytes(BIG);
  bigPath = join(dir, 'big.bin');
  writeFileSync(bigPath, big);
  writeFileSync(join(dir, 'small.bin'), big.subarray(0, MiB));
  const router = new Router();
  routes(router);
  server = new HttpServer();
  attachHttp(server.app, router, {
    corsOrigin: '*',
    logger: pino({ level: 'silent' }),
    inFlight,
    isClosing: () => false,
    observer: { request: (method, route, status) => void observed.push({ method, route, status }) },
  });
  port = await server.listen('127.0.0.1', 0);
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => {
  server?.closeAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const put = (path: string, body: Buffer) => fetch(`${base}${path}`, { method: 'PUT', body });

/** Resolves after `ms` (only for the absence windows: see the file comment). */
const windowOf = (ms: number) => new Promise((r) => setTimeout(r, ms));

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('curl', ['-sS', '--max-time', '60', ...args], { maxBuffer: 1 << 20 }, (e, out) =>
      e ? reject(e) : resolve(out),
    ),
  );
}

describe('streamed request bodies', () => {
  it('a 25 MiB PUT piped to a file arrives byte-exact, the reader never far ahead of the sink', async () => {
    const r = await put('/upload', big);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { maxLead: number; calls: number };
    expect(body).toMatchObject({ size: BIG, sha256: sha(big) });
    expect(sha(readFileSync(join(dir, 'upload.bin')))).toBe(sha(big));
    expect(body.maxLead).toBeLessThan(HOLD_LIMIT + 4 * UWS_READ);
  });

  it('curl: a 25 MiB upload with Content-Length and a chunked one both arrive byte-exact', async () => {
    for (const extra of [[], ['-H', 'Transfer-Encoding: chunked']]) {
      const out = await curl(['-X', 'PUT', '--data-binary', `@${bigPath}`, ...extra, `${base}/upload`]);
      expect(JSON.parse(out)).toMatchObject({ size: BIG, sha256: sha(big) });
    }
  });

  it('while the sink waits, the socket is not read: no more chunks, bounded bytes, then all of it', async () => {
    blockGate = new Gate();
    const blocked = waitFor<[HttpRequest]>(ev, 'blocked');
    const answer = put('/blocked', big);
    const [req] = await blocked;
    try {
      await windowOf(WINDOW_MS);
      expect(req.body.received).toBeLessThan(2 * HOLD_LIMIT + 2 * UWS_READ);
    } finally {
      blockGate.open();
    }
    const r = await answer;
    const body = (await r.json()) as { maxLead: number; calls: number };
    expect(body).toMatchObject({ size: BIG, sha256: sha(big) });
    expect(body.calls).toBeGreaterThan(1);
  });

  it('chunks that arrive before pipe() are held, up to about 1 MiB, then delivered in order', async () => {
    lateGate = new Gate();
    const late = waitFor<[HttpRequest]>(ev, 'late');
    const answer = put('/late', big);
    const [req] = await late;
    try {
      await windowOf(WINDOW_MS);
      expect(req.body.received).toBeLessThan(HOLD_LIMIT + 2 * UWS_READ);
    } finally {
      lateGate.open();
    }
    const r = await answer;
    expect(await r.json()).toMatchObject({ size: BIG, sha256: sha(big) });
  });

  it('a sink that throws mid-way: its error is the answer, the connection closes, the next request is not read', async () => {
    // 1.5 MiB: the whole request and the GET behind it are in the server's kernel buffer when it
    // closes (a raw client still writing would get a reset and lose the answer; curl below reads it).
    const body = 'x'.repeat(MiB + MiB / 2);
    const req = rawRequest('PUT', '/refuse', { body, headers: { 'Content-Type': 'application/octet-stream' } });
    const r = await exchange(port, req + rawRequest('GET', '/ping'), { timeoutMs: 10_000 });
    expect(r.responses.map((x) => x.status)).toEqual([400]);
    expect(JSON.parse(r.responses[0].body)).toMatchObject({ error: 'invalid_request', message: 'more than 1 MiB' });
    expect(r.responses[0].headers.connection).toBe('close');
    expect(r.end).toBe('eof');
  });

  it('curl uploading 25 MiB to a sink that refuses after 1 MiB sees the answer', async () => {
    const file = join(dir, 'big.bin');
    const out = await curl(['-X', 'PUT', '--data-binary', `@${file}`, '-w', '\n%{http_code}', `${base}/refuse`]);
    const [json, code] = out.split('\n');
    expect(code).toBe('400');
    expect(JSON.parse(json)).toMatchObject({ error: 'invalid_request' });
  });

  it('an answer written before the body was read closes the connection (the rest is not a request)', async () => {
    // Large enough that the GET is not in uWS's first read (uWS parses a whole read before closing).
    const body = 'y'.repeat(4 * MiB);
    const req = rawRequest('PUT', '/early', { body });
    const r = await exchange(port, req + rawRequest('GET', '/ping'), { timeoutMs: 10_000 });
    expect(r.responses.map((x) => x.status)).toEqual([403]);
    expect(r.end).toBe('eof');
  });

  it('a whole streamed body keeps the connection: the next request is answered', async () => {
    const req = rawRequest('PUT', '/upload', { body: 'z'.repeat(100_000) });
    // The GET is sent once the upload is in (as any client sends its next request; a request read
    // together with an unanswered async one is lost with the connection, see http-pipelining.test.ts).
    const uploaded = waitFor(ev, 'uploaded');
    const r = await exchange(port, [req, rawRequest('GET', '/ping')], {
      want: 2,
      timeoutMs: 10_000,
      afterWrite: async (i) => {
        if (i === 0) await uploaded;
      },
    });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200]);
    expect(r.responses[1].body).toBe('pong');
  });

  it('RouteTable: a streamBody route takes 25 MiB under both mounts; a buffered one still refuses it', async () => {
    for (const mount of ['/v1', '/api/v1']) {
      const r = await put(`${mount}/t/stream`, big);
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ size: BIG, sha256: sha(big) });
    }
    const refused = await put('/v1/t/buffered', big);
    expect(refused.status).toBe(413);
    expect(await refused.json()).toMatchObject({ error: 'request_too_large' });
  });

  it('an empty body pipes 0 bytes; pipe() on a buffered route throws', async () => {
    const empty = await fetch(`${base}/empty`, { method: 'PUT' });
    expect(await empty.json()).toEqual({ size: 0 });
    const buffered = await fetch(`${base}/buffered`, { method: 'PUT', body: 'abc' });
    expect(((await buffered.json()) as { refused: string }).refused).toMatch(/streamBody/);
  });

  it('a connection lost mid-upload rejects pipe() with the aborted error', async () => {
    const failed = waitFor<[unknown]>(ev, 'pipe-failed');
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const firstChunk = waitFor(ev, 'chunk');
    sock.write(`PUT /abortable HTTP/1.1\r\nHost: x\r\nContent-Length: ${8 * MiB}\r\n\r\n`);
    sock.write(Buffer.alloc(MiB, 1));
    await firstChunk;
    sock.destroy();
    const [e] = await failed;
    expect(e).toBeInstanceOf(AmpError);
    expect((e as AmpError).code).toBe('invalid_request');
    expect((e as AmpError).message).toMatch(/aborted/);
    if (inFlight.count > 0) await waitFor(ev, 'inflight', (n) => n === 0);
  });
});

describe('file replies', () => {
  it('25 MiB byte-exact via fetch, one log line, Content-Length written once by uWS', async () => {
    const before = observed.length;
    const r = await fetch(`${base}/file`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(BIG));
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    expect(sha(new Uint8Array(await r.arrayBuffer()))).toBe(sha(big));
    if (inFlight.count > 0) await waitFor(ev, 'inflight', (n) => n === 0);
    expect(observed.slice(before)).toEqual([{ method: 'GET', route: '/file', status: 200 }]);
  });

  it('25 MiB byte-exact via curl; exactly one Content-Length header', async () => {
    const out = join(dir, 'curl.bin');
    const head = await curl(['-D', '-', '-o', out, `${base}/file`]);
    expect(sha(readFileSync(out))).toBe(sha(big));
    expect(head.split('\r\n').filter((l) => /^content-length:/i.test(l))).toEqual([`Content-Length: ${BIG}`]);
  });

  it('a range, an empty range, a missing file, HEAD', async () => {
    const range = await fetch(`${base}/file?start=100&end=199`);
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(big.subarray(100, 200))).toBe(true);
    const empty = await fetch(`${base}/file?start=5&end=4`);
    expect(empty.status).toBe(206);
    expect(empty.headers.get('content-length')).toBe('0');
    expect(await empty.text()).toBe('');
    const missing = await fetch(`${base}/file?name=nope.bin`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });
    const head = await fetch(`${base}/file`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('application/octet-stream');
    expect(await head.text()).toBe('');
    // Keep-alive still framed: a file GET after the HEAD on one connection.
    if (inFlight.count > 0) await waitFor(ev, 'inflight', (n) => n === 0);
    const headDone = waitFor(ev, 'inflight', (n) => n === 0);
    const r = await exchange(port, [rawRequest('HEAD', '/file'), rawRequest('GET', '/file?start=0&end=9')], {
      want: 2,
      afterWrite: async (i) => {
        if (i === 0) await headDone;
      },
    });
    expect(r.responses.map((x) => x.status)).toEqual([200, 206]);
    expect(Buffer.from(r.responses[1].body, 'latin1').equals(big.subarray(0, 10))).toBe(true);
  });

  it('a client that does not read: the file is read from disk only a little ahead; all of it once read', async () => {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    const rcharBefore = rchar();
    sock.write(rawRequest('GET', '/file'));
    await windowOf(WINDOW_MS);
    const readAhead = rchar() - rcharBefore;
    expect(readAhead).toBeLessThan(12 * MiB);
    expect(inFlight.count).toBe(1);
    expect(openFdsTo(bigPath)).toBe(1);
    const chunks: Buffer[] = [];
    const ended = new Promise((r) => sock.on('end', r));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (chunks.reduce((n, x) => n + x.length, 0) >= BIG) sock.end();
    });
    sock.resume();
    const settled = inFlight.count > 0 ? waitFor(ev, 'inflight', (n) => n === 0, 20_000) : Promise.resolve();
    await settled;
    await Promise.race([ended, windowOf(5000)]);
    const all = Buffer.concat(chunks);
    const bodyAt = all.indexOf('\r\n\r\n') + 4;
    expect(sha(all.subarray(bodyAt, bodyAt + BIG))).toBe(sha(big));
    sock.destroy();
  });

  it('a file shorter than the range: the connection is closed mid-way, the file closed, one log line', async () => {
    if (inFlight.count > 0) await waitFor(ev, 'inflight', (n) => n === 0);
    const before = observed.length;
    const done = waitFor(ev, 'inflight', (n) => n === 0, 10_000);
    const r = await exchange(port, rawRequest('GET', `/file?name=small.bin&start=0&end=${2 * MiB - 1}`), {
      timeoutMs: 10_000,
    });
    await done;
    expect(r.end).toBe('eof');
    expect(r.responses).toEqual([]);
    expect(r.rest).toMatch(/^HTTP\/1.1 206 /);
    expect(r.rest).toContain(`Content-Length: ${2 * MiB}`);
    expect(openFdsTo(join(dir, 'small.bin'))).toBe(0);
    expect(observed.slice(before)).toEqual([{ method: 'GET', route: '/file', status: 206 }]);
  });

  it('a client gone mid-download: the file is closed and the request no longer in flight', async () => {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    sock.write(rawRequest('GET', '/file'));
    const firstBytes = new Promise((r) => sock.once('readable', r));
    await firstBytes;
    expect(openFdsTo(bigPath)).toBe(1);
    const done = waitFor(ev, 'inflight', (n) => n === 0, 10_000);
    sock.destroy();
    await done;
    expect(openFdsTo(bigPath)).toBe(0);
  });
});

/** Bytes this process read with read(2) so far (/proc/self/io: counts page-cache reads too). */
function rchar(): number {
  const m = /^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
  return Number(m?.[1]);
}

function openFdsTo(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}
