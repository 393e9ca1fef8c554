// A raw TCP HTTP client for what fetch cannot send: several requests in one write (pipelining),
// HTTP/1.0, malformed request lines and headers. It parses the Content-Length framed responses uWS
// writes and reports how the connection ended.

import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  responses: RawResponse[];
  /** `eof`: the server closed; `enough`: `want` responses came; `timeout`: neither in time. */
  end: 'eof' | 'enough' | 'timeout' | 'error';
  /** Bytes after the last complete response. */
  rest: string;
}

/** Split a byte stream into complete responses (Content-Length framing only, as uWS writes them). */
export function parseResponses(text: string): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (let guard = 0; guard < 10_000; guard++) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = text.slice(at, headEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (headEnd + 4 + length > text.length) break;
    responses.push({
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: text.slice(headEnd + 4, headEnd + 4 + length),
    });
    at = headEnd + 4 + length;
  }
  return { responses, rest: text.slice(at) };
}

/**
 * Connect, write each of `writes` (each in one write call, the next once the previous is flushed),
 * and collect responses until `want` have come, the server closes, or `timeoutMs` passes.
 */
export function exchange(
  port: number,
  writes: string | string[],
  opts: { want?: number; timeoutMs?: number; afterWrite?: (i: number) => Promise<void> } = {},
): Promise<Exchange> {
  const want = opts.want ?? Number.POSITIVE_INFINITY;
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let data = '';
    let finished = false;
    const finish = (end: Exchange['end']) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parseResponses(data), end });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 5000);
    sock.on('data', (c) => {
      data += c.toString('latin1');
      if (parseResponses(data).responses.length >= want) finish('enough');
    });
    sock.on('end', () => finish('eof'));
    sock.on('close', () => finish('eof'));
    sock.on('error', () => finish('error'));
    sock.on('connect', async () => {
      const list = Array.isArray(writes) ? writes : [writes];
      for (let i = 0; i < list.length && !finished; i++) {
        await new Promise<void>((done) => sock.write(list[i], 'latin1', () => done()));
        await opts.afterWrite?.(i);
      }
    });
  });
}

/** One request as bytes: `HTTP/1.1`, `Host`, and a Content-Length for a body. */
export function rawRequest(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string; version?: string } = {},
): string {
  const headers: Record<string, string> = { Host: '127.0.0.1', ...opts.headers };
  if (opts.body !== undefined) {
    headers['Content-Type'] ??= 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  }
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `${method} ${path} HTTP/${opts.version ?? '1.1'}\r\n${head}\r\n${opts.body ?? ''}`;
}
