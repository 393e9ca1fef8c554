// A webhook receiver for tests (spec §18): a node:http server on 127.0.0.1 that answers each
// request with the next of its answers (a status, or a redirect), records it and emits 'request'.

import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const SECRET = 'whsec_0123456789abcdef';

export interface Hit {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

export type Answer = number | { redirect: string };

/** Answers each request with the next of `answers` (then 200) and emits 'request'. */
export class Hook extends EventEmitter {
  readonly hits: Hit[] = [];
  url = '';
  private server: Server | undefined;
  constructor(public answers: Answer[] = []) {
    super();
  }
  async listen(port = 0): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const a = this.answers.shift() ?? 200;
        const status = typeof a === 'number' ? a : 302;
        this.hits.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status });
        if (typeof a === 'number') res.writeHead(a, { 'content-type': 'application/json' }).end('{}');
        else res.writeHead(302, { location: a.redirect }).end();
        this.emit('request');
      });
    });
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this.url;
  }
  close(): Promise<void> {
    const s = this.server;
    if (!s) return Promise.resolve();
    s.closeAllConnections();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
