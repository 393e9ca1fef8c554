// A clamd client: the INSTREAM command over a unix socket or TCP, the file streamed from disk in
// length-prefixed chunks with the socket's backpressure respected, and PING for readiness. Any
// trouble (cannot connect, timeout, an ERROR reply) is an 'error' result: the caller retries
// later and never takes it for clean.

import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { ClamdTarget } from './types.js';

// AMP_CLAMD_HOST is parsed where the configuration is checked, by the same function.
export { parseClamdHost } from '../../config/clamd.js';

export const DEFAULT_CLAMD_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** Bytes per INSTREAM chunk (each goes out as a 4-byte big-endian length and the bytes). */
const CHUNK_BYTES = 64 * 1024;
const MAX_REPLY_BYTES = 4096;

export type ClamdResult = { kind: 'ok' } | { kind: 'found'; signature: string } | { kind: 'error'; reason: string };

function describe(t: ClamdTarget): string {
  return t.socket ?? `${t.host}:${t.port}`;
}

/** Opens a connection; rejects on error or when it is not up within the connect timeout. */
async function open(target: ClamdTarget, timeoutMs: number): Promise<Socket> {
  const sock = target.socket ? connect({ path: target.socket }) : connect({ host: target.host, port: target.port! });
  const timer = setTimeout(
    () => sock.destroy(new Error(`connect to clamd ${describe(target)} timed out`)),
    Math.min(timeoutMs, CONNECT_TIMEOUT_MS),
  );
  try {
    await once(sock, 'connect');
    return sock;
  } finally {
    clearTimeout(timer);
  }
}

/** Collects clamd's one-line reply (NUL-terminated for z-commands) until NUL, end or close. */
function readReply(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err && text === '') reject(err);
      else resolve(text.replace(/\0[\s\S]*$/, '').trim());
    };
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\0') || text.length > MAX_REPLY_BYTES) done();
    });
    sock.on('end', () => done());
    sock.on('close', () => done(new Error('clamd closed the connection without a reply')));
    sock.on('error', (err) => done(err));
  });
}

/** Streams the file as INSTREAM chunks, waiting for 'drain' whenever the socket's buffer is full. */
async function sendFile(sock: Socket, path: string, signal: AbortSignal): Promise<void> {
  sock.write('zINSTREAM\0');
  const file = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of file as AsyncIterable<Buffer>) {
      if (signal.aborted) return;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(chunk.length);
      sock.write(len);
      if (!sock.write(chunk)) await once(sock, 'drain', { signal });
    }
    sock.write(Buffer.alloc(4));
  } finally {
    file.destroy();
  }
}

export function parseReply(reply: string): ClamdResult {
  const body = reply.replace(/^stream:\s*/, '');
  if (body === 'OK') return { kind: 'ok' };
  const found = /^(.+) FOUND$/.exec(body);
  if (found) return { kind: 'found', signature: found[1]! };
  if (/size limit exceeded/i.test(reply)) return { kind: 'error', reason: 'clamd_stream_limit' };
  return { kind: 'error', reason: `clamd_error:${reply.slice(0, 200) || 'empty reply'}` };
}

/** Runs one INSTREAM scan of the file at `path`; never throws. */
export async function clamdScanFile(
  target: ClamdTarget,
  path: string,
  timeoutMs = DEFAULT_CLAMD_TIMEOUT_MS,
  /** Aborting ends the scan at once as an error to retry (`scanner_closed`). */
  signal?: AbortSignal,
): Promise<ClamdResult> {
  if (signal?.aborted) return { kind: 'error', reason: 'scanner_closed' };
  let sock: Socket;
  try {
    sock = await open(target, timeoutMs);
  } catch {
    return { kind: 'error', reason: 'clamd_unreachable' };
  }
  let failure = 'clamd_error';
  const stop = new AbortController();
  const timer = setTimeout(() => {
    failure = 'clamd_timeout';
    sock.destroy(new Error('timeout'));
  }, timeoutMs);
  const onAbort = () => {
    failure = 'scanner_closed';
    sock.destroy(new Error('scanner closed'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const reply = readReply(sock);
    // A reply before the end of the stream (a size limit) ends the sending; a file that cannot be
    // read ends the connection, and so the wait for a reply.
    void sendFile(sock, path, stop.signal).catch((err: NodeJS.ErrnoException) => {
      if (stop.signal.aborted) return;
      if (err.syscall !== 'write' && err.code) failure = `read_error:${err.code}`;
      sock.destroy(err);
    });
    return parseReply(await reply);
  } catch {
    return { kind: 'error', reason: failure };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    stop.abort();
    sock.destroy();
  }
}

/** Does clamd answer PING with PONG within the timeout? */
export async function clamdPing(target: ClamdTarget, timeoutMs = 2_000): Promise<boolean> {
  let sock: Socket | undefined;
  const timer = setTimeout(() => sock?.destroy(), timeoutMs);
  try {
    sock = await open(target, timeoutMs);
    const reply = readReply(sock);
    sock.write('zPING\0');
    return (await reply) === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    sock?.destroy();
  }
}
