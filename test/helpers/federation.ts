// Two federated providers as child processes (`amp-relay serve`, dist): a.example and b.example on
// loopback ports chosen before they start, each pinning the other (b.example's key pinned on A as a
// PEM, a.example's on B as a fingerprint, so both pin forms are used), http allowed for 127.0.0.1.
// Each provider key is written into the data dir before the start, so tests can sign federation
// requests as either provider.

import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, type ChildServer, type Reply, spawnServer, tempDir } from './server.js';
import { freePort } from './ports.js';

export interface Provider {
  domain: string;
  port: number;
  dir: string;
  pins: string;
  key: KeyObject;
  publicPem: string;
  fingerprint: string;
  args: string[];
  server?: ChildServer;
  /** `http://127.0.0.1:<port>/api/v1` */
  api: string;
  ws: string;
}

function provider(domain: string, port: number): Provider {
  const dir = tempDir(`amp-fed-${domain}-`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  writeFileSync(join(dir, 'provider-ed25519.pem'), pem, { mode: 0o600 });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    domain,
    port,
    dir,
    pins: join(dir, '..', `${dir.split('/').pop()}-pins.json`),
    key: privateKey,
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
    fingerprint: `SHA256:${createHash('sha256').update(spki).digest('base64')}`,
    args: [],
    api: `http://127.0.0.1:${port}/api/v1`,
    ws: `ws://127.0.0.1:${port}/v1/ws`,
  };
}

/** A and B configured (not started): start() each, stopAll() at the end. */
export async function twoProviders(extraArgs: string[] = []): Promise<{ a: Provider; b: Provider }> {
  const a = provider('a.example', await freePort());
  const b = provider('b.example', await freePort());
  writeFileSync(a.pins, JSON.stringify({ 'b.example': { endpoint: b.api, public_key: b.publicPem } }));
  writeFileSync(
    b.pins,
    JSON.stringify({ 'a.example': { endpoint: `http://127.0.0.1:${a.port}/v1`, public_key: a.fingerprint } }),
  );
  for (const p of [a, b]) {
    p.args = [
      ...['--port', String(p.port), '--provider-domain', p.domain, '--federation-pins', p.pins],
      ...['--federation-allow-http', '127.0.0.1', ...extraArgs],
    ];
  }
  return { a, b };
}

export async function start(p: Provider): Promise<ChildServer> {
  p.server = await spawnServer(p.dir, p.args);
  return p.server;
}

export async function stopAll(...ps: Provider[]): Promise<void> {
  for (const p of ps) {
    await p.server?.stop();
    rmSync(p.dir, { recursive: true, force: true });
    rmSync(p.pins, { force: true });
  }
}

export interface SignedOptions {
  /** X-AMP-Provider (default: the signing provider's domain). */
  provider?: string;
  /** X-AMP-Timestamp (default: now). */
  ts?: string;
  /** X-AMP-Signature as sent (default: a valid one). */
  signature?: string;
  headers?: Record<string, string>;
}

export function providerHeaders(as: Provider, signedBytes: string, o: SignedOptions = {}): Record<string, string> {
  const ts = o.ts ?? String(Math.floor(Date.now() / 1000));
  const signature = o.signature ?? sign(null, Buffer.from(`${ts}.${signedBytes}`, 'utf8'), as.key).toString('base64');
  return {
    'X-AMP-Provider': o.provider ?? as.domain,
    'X-AMP-Timestamp': ts,
    'X-AMP-Signature': signature,
    ...o.headers,
  };
}

/** POST <to>/federation/deliver as provider `as`, the body exactly `raw`. */
export function deliverAs(to: Provider, as: Provider, raw: string, o: SignedOptions = {}): Promise<Reply> {
  const headers = { 'Content-Type': 'application/json', ...providerHeaders(as, raw, o) };
  return call('POST', `${to.api.replace('/api/v1', '/v1')}/federation/deliver`, { raw, headers });
}
