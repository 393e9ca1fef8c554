// Logs (README "Logs"): one `info` line per HTTP request naming the route template, status, time
// and authenticated agent; WebSocket sessions logged when they open and close, not per frame;
// `debug` lines per message (routed, pushed, acked, expired) with ids; never a key, a token, a
// signature or a private key. The in-process server logs through the real createLogger into a
// stream the test reads; AMP_LOG_FORMAT=pretty and the asynchronous stdout are checked on the
// CLI as a child process.

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/ops/logger.js';
import { activeRegistration, startAidServer, tokenFor, type AidServer } from '../helpers/aid.js';
import { waitFor } from '../helpers/events.js';
import { readmeBlock } from '../helpers/readme.js';
import {
  call,
  register,
  ROOT,
  routeOk,
  signMessage,
  spawnServer,
  tempDir,
  type Registered,
} from '../helpers/server.js';
import { connectWs } from '../helpers/ws.js';

/** A pino destination that keeps every line and announces it. */
class Lines extends EventEmitter {
  readonly all: string[] = [];
  write(chunk: string): void {
    for (const line of chunk.split('\n')) {
      if (line === '') continue;
      this.all.push(line);
      this.emit('line', line);
    }
  }
  /** The first line matching `pred`, waiting for it if it is not there yet. */
  async line(pred: (l: string) => boolean, timeoutMs = 5000): Promise<string> {
    return this.all.find(pred) ?? (await waitFor<[string]>(this, 'line', pred, timeoutMs))[0];
  }
  records(): Record<string, any>[] {
    return this.all.map((l) => JSON.parse(l));
  }
  /** The first record matching `pred`, waiting for it if it is not there yet. */
  async find(pred: (r: Record<string, any>) => boolean, timeoutMs = 5000): Promise<Record<string, any>> {
    const seen = this.records().find(pred);
    if (seen) return seen;
    const [line] = await waitFor<[string]>(this, 'line', (l) => pred(JSON.parse(l)), timeoutMs);
    return JSON.parse(line);
  }
}

let s: AidServer;
const lines = new Lines();
let alice: Registered;
let bob: Registered;
const secrets: string[] = [];

beforeAll(async () => {
  s = await startAidServer({ logger: createLogger('debug', 'json', lines), rateLimits: 'off' });
  alice = await register(s.t.api, 'alice', 'acme');
  bob = await register(s.t.api, 'bob', 'acme');
  secrets.push(alice.api_key, bob.api_key, s.admin);
  // The base64 body of each private key, line by line (a PEM's lines are what could leak).
  for (const a of [alice, bob]) secrets.push(...a.keys.privatePem.split('\n').filter((l) => l && !l.startsWith('-')));
});
afterAll(() => s.t.close());

const requestLine = (method: string, route: string) => (r: Record<string, any>) =>
  r.msg === 'request' && r.method === method && r.route === route;

describe('request lines (info)', () => {
  it('name the route template, status, time and agent; debug lines carry message ids', async () => {
    const msg = { to: bob.address, subject: 'logged', payload: { type: 'notification', message: 'hi' } };
    const signature = signMessage(alice.keys.privateKey, { ...msg, from: alice.address });
    secrets.push(signature);
    const { id } = await routeOk(s.t.api, alice, { ...msg, signature });

    const routeLine = await lines.find(requestLine('POST', '/api/v1/route'));
    expect(routeLine).toMatchObject({ level: 30, status: 200, agent: alice.agent_id });
    expect(typeof routeLine.ms).toBe('number');
    const routed = await lines.find((r) => r.event === 'routed' && r.id === id);
    expect(routed).toMatchObject({ level: 20, via: 'rest', from: alice.agent_id, to: bob.agent_id });

    const poll = await call('GET', `${s.t.api}/messages/pending`, { key: bob.api_key });
    expect(poll.body.messages.map((m: { id: string }) => m.id)).toEqual([id]);
    expect(await lines.find(requestLine('GET', '/api/v1/messages/pending'))).toMatchObject({
      status: 200,
      agent: bob.agent_id,
    });

    const ack = await call('DELETE', `${s.t.api}/messages/pending/${id}`, { key: bob.api_key });
    expect(ack.status).toBe(200);
    const ackLine = await lines.find(requestLine('DELETE', '/api/v1/messages/pending/:id'));
    expect(ackLine).toMatchObject({ status: 200, agent: bob.agent_id });
    // The template, not the raw path with the id.
    expect(lines.all.filter((l) => l.includes(`"route":"/api/v1/messages/pending/${id}"`))).toEqual([]);
    expect(await lines.find((r) => r.event === 'acked')).toMatchObject({ level: 20, via: 'rest', ids: [id] });
  });

  it('an unauthenticated request has no agent; an unknown path is `unmatched`; a refused key is not logged', async () => {
    await call('GET', `${s.t.api}/health`);
    const health = await lines.find(requestLine('GET', '/api/v1/health'));
    expect(health.agent).toBeUndefined();
    expect(health.status).toBe(200);

    const wrongKey = 'amp_live_sk_not_a_key_0123456789abcdef';
    secrets.push(wrongKey);
    expect((await call('GET', `${s.t.api}/agents/me`, { key: wrongKey })).status).toBe(401);
    expect(await lines.find(requestLine('GET', '/api/v1/agents/me'))).toMatchObject({ status: 401 });

    await call('GET', `${s.t.url}/no/such/path/secret-looking-segment`);
    expect(await lines.find((r) => r.msg === 'request' && r.status === 404)).toMatchObject({ route: 'unmatched' });
    expect(lines.all.filter((l) => l.includes('secret-looking-segment') && l.includes('"msg":"request"'))).toEqual([]);
  });

  it('an AID token exchange is logged by template, and the token never appears', async () => {
    await activeRegistration(s, alice);
    const r = await tokenFor(s, alice);
    expect(r.status).toBe(200);
    secrets.push(r.body.access_token);
    expect(await lines.find(requestLine('POST', '/:t/oauth/token'))).toMatchObject({ status: 200 });
  });

  it('WebSocket sessions: one line at open and one at close, none per frame; pushes at debug', async () => {
    const before = lines.all.length;
    const ws = await connectWs(s.t.server.wsUrl, bob.api_key);
    const opened = await lines.find((r) => r.event === 'ws_open' && r.agent === bob.agent_id);
    expect(opened.level).toBe(30);
    const { id } = await routeOk(s.t.api, alice, {
      to: bob.address,
      subject: 'live',
      payload: { type: 'notification', message: 'live' },
    });
    expect((await ws.nextType('message.new')).data.id).toBe(id);
    expect(await lines.find((r) => r.event === 'pushed' && r.id === id)).toMatchObject({ level: 20, to: bob.agent_id });
    ws.sendText({ type: 'ack', ids: [id], request_id: 'a1' });
    await ws.nextType('ack.result', 'a1');
    expect(await lines.find((r) => r.event === 'acked' && r.via === 'ws')).toMatchObject({ ids: [id] });
    for (let i = 0; i < 5; i++) ws.sendText({ type: 'ping', request_id: `p${i}` });
    await ws.nextType('pong', 'p4');
    await ws.close();
    const closedLine = await lines.find((r) => r.event === 'ws_close' && r.session === opened.session);
    expect(closedLine).toMatchObject({ level: 30, agent: bob.agent_id });
    // Frames are not lines: the session's info lines are its open and close, and the route request.
    const infoSince = lines
      .records()
      .slice(before)
      .filter((r) => r.level >= 30);
    expect(infoSince.map((r) => r.event ?? r.route)).toEqual(['ws_open', '/api/v1/route', 'ws_close']);
  });

  it('a message that expires unacknowledged gets an expired line (debug) with its id', async () => {
    const carol = await register(s.t.api, 'carol', 'acme');
    secrets.push(carol.api_key);
    const expiresAt = Date.now() + 300;
    const soon = { to: carol.address, subject: 'soon', payload: { type: 'notification', message: 'soon' } };
    const { id } = await routeOk(s.t.api, alice, { ...soon, expires_at: new Date(expiresAt).toISOString() });
    // Wait for a known instant (the expiry), not for a guess; the next read drops the message.
    await sleep(Math.max(0, expiresAt - Date.now()) + 20);
    expect((await call('GET', `${s.t.api}/messages/pending`, { key: carol.api_key })).body.messages).toEqual([]);
    expect(await lines.find((r) => r.event === 'expired')).toMatchObject({ level: 20, ids: [id], to: carol.agent_id });
  });

  it('no line holds an API key, a token, a signature or a private key', () => {
    expect(secrets.length).toBeGreaterThan(6);
    const text = lines.all.join('\n');
    for (const secret of secrets) expect(text.includes(secret), `a log line holds ${secret.slice(0, 12)}…`).toBe(false);
  });
});

describe('the CLI (child process)', () => {
  it('AMP_LOG_FORMAT=pretty prints lines for humans, not JSON', async () => {
    const dataDir = tempDir('amp-log-pretty-');
    const proc = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'amp-relay.js'), 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', AMP_LOG_FORMAT: 'pretty' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = new Lines();
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => out.write(d));
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    try {
      const listening = await out.line((l) => l.includes('listening'), 20_000);
      const url = /http:\/\/127\.0\.0\.1:\d+/.exec(listening)![0];
      expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);
      const req = await out.line((l) => l.includes('/api/v1/health'));
      expect(req).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: request /);
      expect(req).toContain('"status":200');
      // The README's example line has the same shape.
      expect(readmeBlock('log-pretty')).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: request \{"method":"GET","route":/);
      expect(() => JSON.parse(req)).toThrow();
      expect(() => JSON.parse(listening)).toThrow();
    } finally {
      proc.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('stdout is written asynchronously and flushed at exit: the last line (stopped) is there', async () => {
    const dataDir = tempDir('amp-log-exit-');
    const child = await spawnServer(dataDir);
    const out = new Lines();
    child.proc.stdout!.setEncoding('utf8').on('data', (d: string) => out.write(d));
    try {
      expect((await fetch(`${child.api}/health`)).status).toBe(200);
      await out.find((r) => r.msg === 'request' && r.route === '/api/v1/health');
      // 'close' comes after stdout has been read to its end.
      const drained = new Promise((resolve) => child.proc.on('close', resolve));
      expect(await child.stop()).toBe(0);
      await drained;
      expect(out.records().at(-1)).toMatchObject({ msg: 'stopped' });
    } finally {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
