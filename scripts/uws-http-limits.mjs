#!/usr/bin/env node
// Minimal reproduction of what the uWebSockets.js build we use (20.30, native) does with HTTP input
// that never reaches a JS handler or that it refuses to serve. Plain uWS.App(), no amp-relay code:
//   /sync           answers inside the handler
//   /async          answers after an await (setImmediate), as a handler waiting for a commit does
//   /paused         like /async, but calls res.pause() before the await and res.resume() after
//   (`?slow`: answer after 100 ms instead of on the next turn)
// Each case writes its bytes in ONE write on a raw TCP socket (the split cases: two writes 20 ms
// apart, so they arrive in two reads) and reports what came back before EOF or WAIT_MS (15 s).
// Run: node scripts/uws-http-limits.mjs [case ...]   (all cases: about 3 minutes)
//
// What it shows (uWS 20.30): pipelined requests behind a pending response close the connection
// unanswered, also the already-answered ones before it (upstream uNetworking/uWebSockets.js#1301;
// the close is deliberate in uWS's HttpContext.h: "denying async pipelining"); res.pause() holds a
// request that comes in a later read (split-paused), not one in the same read; HTTP/1.0, 49+
// headers, absolute-form, bare LF and obs-fold never reach JS and are closed unanswered after
// ~10-12 s; a head over ~4 KB spanning reads is dropped at once; duplicate Content-Length reaches JS.

import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const uWS = require('uWebSockets.js');
const WAIT_MS = Number(process.env.WAIT_MS ?? 15000);

const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const splitHead = (n) => {
  const head = get('/sync', `X-Big: ${'a'.repeat(n)}\r\n`);
  return [head.slice(0, 100), head.slice(100)];
};
const manyHeaders = (n) => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');

export const CASES = {
  'pipeline-sync-x3': get('/sync').repeat(3),
  'pipeline-async+sync': get('/async') + get('/sync'),
  'pipeline-sync-x50+async+sync': get('/sync').repeat(50) + get('/async') + get('/sync'),
  'pipeline-paused+sync': get('/paused') + get('/sync'),
  // Two writes 20 ms apart: the second request arrives in a later read, while /async or /paused is pending.
  'split-async|sync': [get('/async?slow'), get('/sync')],
  'split-paused|sync': [get('/paused?slow'), get('/sync')],
  'http1.0': 'GET /sync HTTP/1.0\r\nHost: x\r\n\r\n',
  'http1.0-keepalive': 'GET /sync HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n',
  'headers-48': get('/sync', manyHeaders(47)),
  'headers-49': get('/sync', manyHeaders(48)),
  'headers-60': get('/sync', manyHeaders(59)),
  'header-8k': get('/sync', `X-Big: ${'a'.repeat(8192)}\r\n`),
  'header-64k': get('/sync', `X-Big: ${'a'.repeat(65536)}\r\n`),
  'header-1m': get('/sync', `X-Big: ${'a'.repeat(1 << 20)}\r\n`),
  // A head that does not come in one read (a slow or segmented client) is buffered up to ~4 KB.
  'head-3k-in-2-reads': splitHead(3000),
  'head-6k-in-2-reads': splitHead(6000),
  'absolute-form': 'GET http://x/sync HTTP/1.1\r\nHost: x\r\n\r\n',
  'bare-lf': 'GET /sync HTTP/1.1\nHost: x\n\n',
  'obs-fold': 'GET /sync HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n',
  'dup-content-length': 'POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello',
};

function serve() {
  const app = uWS.App();
  const seen = [];
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    const headers = [];
    req.forEach((k, v) => {
      headers.push(`${k}=${v}`);
    });
    seen.push(
      `${req.getMethod()} ${url} [${headers
        .filter((h) => !h.startsWith('x-h'))
        .join(' ')
        .slice(0, 60)}]`,
    );
    const answer = () => res.cork(() => res.end(`${url}\n`));
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
      seen.push(`aborted ${url}`);
    });
    res.onData(() => {});
    if (url === '/sync') return answer();
    if (url === '/paused') res.pause();
    const later = req.getQuery() === 'slow' ? (f) => setTimeout(f, 100) : setImmediate;
    later(() => {
      if (aborted) return;
      // resume() before end(): the response is invalid after a successful end().
      if (url === '/paused') res.resume();
      answer();
    });
  });
  return new Promise((resolve) =>
    app.listen('127.0.0.1', 0, (t) => resolve({ app, port: uWS.us_socket_local_port(t), seen })),
  );
}

/** Write `bytes` in one write; resolve with what came back and how the connection ended. */
export function exchange(port, bytes, waitMs = WAIT_MS) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const started = Date.now();
    const done = (end) => {
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = text.match(/^HTTP\/1\.[01] \d{3}/gm) ?? [];
      resolve({ end, ms: Date.now() - started, statuses, text });
    };
    const timer = setTimeout(() => done('timeout'), waitMs);
    const writes = Array.isArray(bytes) ? bytes : [bytes];
    sock.setNoDelay(true);
    sock.on('connect', () => {
      for (const [i, w] of writes.entries()) setTimeout(() => sock.write(w), 20 * i);
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => done('eof'));
    sock.on('error', (e) => done(`error ${e.code}`));
  });
}

async function main() {
  const { port, seen } = await serve();
  const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(CASES);
  for (const name of names) {
    seen.length = 0;
    const r = await exchange(port, CASES[name]);
    const summary = r.statuses.length ? `${r.statuses.length} x ${[...new Set(r.statuses)].join(',')}` : 'no answer';
    console.log(
      `${name.padEnd(30)} ${summary.padEnd(22)} then ${r.end} after ${r.ms} ms; handler saw ${seen.length}:` +
        ` ${seen.slice(0, 3).join(' | ')}${seen.length > 3 ? ' ...' : ''}`,
    );
  }
  process.exit(0);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
