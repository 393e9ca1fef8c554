// TLS test helpers: a self-signed certificate for localhost and 127.0.0.1 made by the README's
// own `tls-cert` block (the caller passes its text), and HTTPS requests that trust only that certificate.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { WsClient } from './ws.js';

export interface TestCert {
  cert: string;
  key: string;
  /** The certificate's PEM, to trust as a CA. */
  ca: string;
}

/** Run README block `tls-cert` (its text: `readmeBlock('tls-cert')`) as written in `dir`: it writes cert.pem and key.pem. */
export function makeCert(dir: string, block: string): TestCert {
  execFileSync('bash', ['--norc', '-euo', 'pipefail', '-c', block], { cwd: dir, stdio: 'pipe' });
  const cert = join(dir, 'cert.pem');
  return { cert, key: join(dir, 'key.pem'), ca: readFileSync(cert, 'utf8') };
}

export interface Answer {
  status: number;
  body: any;
}

/** One HTTPS request trusting only `ca`; JSON in and out. */
export function httpsJson(
  ca: string,
  method: string,
  url: string,
  opts: { apiKey?: string; json?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  const headers: Record<string, string> = {};
  if (body) headers['Content-Type'] = 'application/json';
  if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON (an nginx error page)
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A message routed over https from `from` is pushed over wss to `to`, both trusting only `ca`
 * (straight to the server, or through a proxy: the caller gives the URLs).
 */
export async function expectPushOverTls(
  ca: string,
  urls: { api: string; ws: string },
  from: { api_key: string },
  to: { api_key: string; address: string },
  subject: string,
): Promise<void> {
  const ws = new WsClient(new WebSocket(urls.ws, [], { ca, headers: { Authorization: `Bearer ${to.api_key}` } }));
  await ws.nextType('connected');
  const sent = await httpsJson(ca, 'POST', `${urls.api}/route`, {
    apiKey: from.api_key,
    json: { to: to.address, subject, payload: { type: 'notification', message: 'hi' } },
  });
  expect(sent.status).toBe(200);
  const pushed = await ws.nextType('message.new');
  expect(JSON.stringify(pushed)).toContain((sent.body as { id: string }).id);
  await ws.close();
}
