// Test helpers: start the real server (uWS on an ephemeral loopback port, LMDB in a temp dir), or
// run it as a child process (for kill -9 and restart tests), and register agents with real keys.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { canonicalString, payloadHash } from '../../proto/index.js';
import { startServer, type ServerHandle, type StartOptions } from '../../src/server.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function tempDir(prefix = 'amp-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface TestServer {
  server: ServerHandle;
  url: string;
  /** `${url}/api/v1` */
  api: string;
  /** The base of the URLs the server gives out: `publicUrl`, or `http://localhost:<listening port>` without one. */
  publicBase: string;
  dataDir: string;
  close(): Promise<void>;
}

/** The real server on a loopback port the OS picks (port 0), LMDB in a fresh temp dir unless given. */
export async function startTestServer(opts: StartOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const server = await startServer({ host: '127.0.0.1', port: 0, logLevel: 'silent', env: {}, ...opts, dataDir });
  return {
    server,
    url: server.url,
    api: `${server.url}/api/v1`,
    publicBase: opts.publicUrl?.replace(/\/+$/, '') || `http://localhost:${server.port}`,
    dataDir,
    async close() {
      await server.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Keypair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  privatePem: string;
}

export function newKeypair(): Keypair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
  };
}

export interface Registered {
  address: string;
  agent_id: string;
  api_key: string;
  tenant: string;
  name: string;
  keys: Keypair;
  body: Record<string, any>;
}

export async function register(
  api: string,
  name: string,
  tenant = 'default',
  extra: Record<string, unknown> = {},
): Promise<Registered> {
  const keys = newKeypair();
  const res = await fetch(`${api}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, tenant, public_key: keys.publicPem, key_algorithm: 'Ed25519', ...extra }),
  });
  const body = (await res.json()) as Record<string, any>;
  if (res.status !== 201) throw new Error(`register ${name}@${tenant} failed: ${res.status} ${JSON.stringify(body)}`);
  return {
    address: body.address,
    agent_id: body.agent_id,
    api_key: body.api_key,
    tenant: body.tenant,
    name,
    keys,
    body,
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

/** fetch with an optional API key; the body is parsed as JSON when there is one. */
export async function call(
  method: string,
  url: string,
  opts: { key?: string; json?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
  let body: string | Buffer | undefined = opts.raw;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export interface RouteResult {
  id: string;
  status: string;
  method: string;
  [field: string]: any;
}

/** POST {api}/route as `from` (a registered agent, or a bare API key); the reply as it came. */
export function route(
  api: string,
  from: Registered | string,
  json: unknown,
  headers?: Record<string, string>,
): Promise<Reply> {
  return call('POST', `${api}/route`, { key: typeof from === 'string' ? from : from.api_key, json, headers });
}

/** route() that must be answered 200; the result body (`id`, `status`, `method`, ...). */
export async function routeOk(api: string, from: Registered | string, json: unknown): Promise<RouteResult> {
  const r = await route(api, from, json);
  if (r.status !== 200) {
    const subject = (json as { subject?: unknown } | null)?.subject;
    throw new Error(`route ${JSON.stringify(subject)} answered ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body as RouteResult;
}

export interface SignInput {
  from: string;
  to: string;
  subject: string;
  priority?: string;
  in_reply_to?: string;
  payload: unknown;
}

/** Base64 Ed25519 signature over the v1.1 canonical string. */
export function signMessage(privateKey: KeyObject, m: SignInput): string {
  const s = canonicalString({
    from: m.from,
    to: m.to,
    subject: m.subject,
    priority: m.priority,
    in_reply_to: m.in_reply_to,
    payload_hash: payloadHash(m.payload),
  });
  return cryptoSign(null, Buffer.from(s, 'utf8'), privateKey).toString('base64');
}

export interface ChildServer {
  url: string;
  api: string;
  proc: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const CHILD_START_TIMEOUT_MS = 20_000;

/** Run `amp-relay serve` (the built CLI) as a separate process on a free loopback port. */
export async function spawnServer(
  dataDir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<ChildServer> {
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, 'bin', 'amp-relay.js'),
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--log-level',
      'info',
      ...extraArgs,
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start within ${CHILD_START_TIMEOUT_MS} ms: ${stderr}`)),
      CHILD_START_TIMEOUT_MS,
    );
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'listening' && rec.url) {
          clearTimeout(timer);
          resolve(rec.url);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening: ${stderr}`));
    });
  });
  return {
    url,
    api: `${url}/api/v1`,
    proc,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
