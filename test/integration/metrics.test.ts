// GET /metrics (README "Metrics"): scrape, do the work, scrape again, and check what each named
// metric moved by: messages routed/pushed/acked/expired by method, queue depth (total and top
// agents), HTTP latency histograms by route template, LMDB commit latency, WebSocket sessions, AID
// tokens issued and denied, process metrics. The text is checked against the Prometheus text
// exposition format (a strict parser below). AMP_METRICS_TOKEN protects the endpoint; the
// README's curl block runs as written. Two servers in one process keep separate counters.

import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeRegistration,
  startAidServer,
  tokenFor,
  tokenProof,
  tokenRequest,
  type AidServer,
} from '../helpers/aid.js';
import { readmeBlock } from '../helpers/readme.js';
import { call, newKeypair, register, routeOk, startTestServer, type Registered } from '../helpers/server.js';
import { connectWs } from '../helpers/ws.js';

const run = promisify(execFile);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const SUFFIXES: Record<string, string[]> = {
  counter: [''],
  gauge: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
  untyped: [''],
};

/**
 * The Prometheus text format (0.0.4), strictly: HELP and TYPE once per family and before its
 * samples, sample names of the declared family (with the type's suffixes), well-formed labels,
 * numeric values; histograms have cumulative buckets ending in +Inf equal to _count.
 */
function parseProm(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      expect(name, line).toMatch(NAME);
      if (kind === 'TYPE') {
        expect(types.has(name), `second TYPE for ${name}`).toBe(false);
        expect(Object.keys(SUFFIXES), line).toContain(rest);
        types.set(name, rest!);
      } else {
        expect(helps.has(name), `second HELP for ${name}`).toBe(false);
        helps.add(name);
      }
      continue;
    }
    expect(line.startsWith('#'), `a comment that is neither HELP nor TYPE: ${line}`).toBe(false);
    const m = SAMPLE.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const [, name, rawLabels = '', rawValue] = m!;
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < rawLabels.length) {
      const l = LABEL.exec(rawLabels);
      expect(l, `bad labels in ${line}`).not.toBeNull();
      labels[l![1]] = l![2];
    }
    // Values are Go ParseFloat numbers: NaN and (+/-)Inf in any case (prom-client writes `Nan`).
    const special = /^([+-]?)inf$/i.exec(rawValue) ? (rawValue.startsWith('-') ? -Infinity : Infinity) : undefined;
    const value = special ?? (/^nan$/i.test(rawValue) ? Number.NaN : Number(rawValue));
    expect(Number.isNaN(value) && !/^nan$/i.test(rawValue), `bad value in ${line}`).toBe(false);
    const family = [...types.keys()].find((f) => SUFFIXES[types.get(f)!].some((s) => name === f + s));
    expect(family, `sample before or without its TYPE: ${line}`).toBeDefined();
    samples.push({ name, labels, value });
  }
  checkHistograms(types, samples);
  return { types, samples };
}

function checkHistograms(types: Map<string, string>, samples: Sample[]): void {
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      const { le, ...rest } = s.labels;
      expect(le, `${family}_bucket without le`).toBeDefined();
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    for (const [key, buckets] of series) {
      const counts = buckets.map((b) => b.value);
      expect(counts, `${family} buckets are cumulative`).toEqual([...counts].sort((a, b) => a - b));
      expect(buckets.at(-1)!.labels.le).toBe('+Inf');
      const count = samples.find((x) => x.name === `${family}_count` && JSON.stringify(x.labels) === key);
      expect(count?.value).toBe(counts.at(-1));
    }
  }
}

async function scrape(url: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}/metrics`, { headers });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseProm(await r.text());
}

/** The value of one series (0 when absent: a counter not yet seen). */
function value(p: { samples: Sample[] }, name: string, labels: Record<string, string> = {}): number {
  const s = p.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}

let s: AidServer;
let alice: Registered;
let bob: Registered;
const msg = (to: Registered, subject: string, extra: Record<string, unknown> = {}) => ({
  to: to.address,
  subject,
  payload: { type: 'notification', message: subject },
  ...extra,
});

beforeAll(async () => {
  s = await startAidServer({ rateLimits: 'off' });
  alice = await register(s.t.api, 'alice', 'acme');
  bob = await register(s.t.api, 'bob', 'acme');
});
afterAll(() => s.t.close());

describe('GET /metrics', () => {
  it('counts messages routed, pushed and acked by method; WS sessions; HTTP and commit histograms', async () => {
    const before = await scrape(s.t.url);
    const bobWs = await connectWs(s.t.server.wsUrl, bob.api_key);
    const aliceWs = await connectWs(s.t.server.wsUrl, alice.api_key);
    const ids = [
      (await routeOk(s.t.api, alice, msg(bob, 'r1'))).id,
      (await routeOk(s.t.api, alice, msg(bob, 'r2'))).id,
    ];
    aliceWs.sendText({ type: 'route', request_id: 'w1', data: msg(bob, 'w1') });
    ids.push((await aliceWs.nextType('route.result', 'w1')).data.id);
    for (const id of ids) expect((await bobWs.nextType('message.new')).data.id).toBe(id);
    const during = await scrape(s.t.url);
    expect(value(during, 'amp_ws_sessions') - value(before, 'amp_ws_sessions')).toBe(2);

    expect((await call('DELETE', `${s.t.api}/messages/pending/${ids[0]}`, { key: bob.api_key })).status).toBe(200);
    bobWs.sendText({ type: 'ack', ids: ids.slice(1), request_id: 'a1' });
    expect((await bobWs.nextType('ack.result', 'a1')).data.acknowledged).toBe(2);
    await Promise.all([bobWs.close(), aliceWs.close()]);
    const after = await scrape(s.t.url);

    const delta = (name: string, labels?: Record<string, string>) =>
      value(after, name, labels) - value(before, name, labels);
    expect(delta('amp_messages_routed_total', { method: 'rest' })).toBe(2);
    expect(delta('amp_messages_routed_total', { method: 'ws' })).toBe(1);
    expect(delta('amp_messages_pushed_total')).toBe(3);
    expect(delta('amp_ws_pushes_total')).toBe(3);
    expect(delta('amp_messages_acked_total', { method: 'rest' })).toBe(1);
    expect(delta('amp_messages_acked_total', { method: 'ws' })).toBe(2);
    expect(delta('amp_messages_expired_total')).toBe(0);
    expect(delta('amp_store_commit_duration_seconds_count')).toBeGreaterThanOrEqual(3);

    // The route template, not the path with the id; buckets from 0.25 ms to +Inf.
    const route = { method: 'POST', route: '/api/v1/route', status: '200' };
    expect(delta('http_request_duration_seconds_count', route)).toBe(2);
    const ack = { method: 'DELETE', route: '/api/v1/messages/pending/:id', status: '200' };
    expect(delta('http_request_duration_seconds_count', ack)).toBe(1);
    const les = after.samples
      .filter((x) => x.name === 'http_request_duration_seconds_bucket' && x.labels.route === ack.route)
      .map((x) => x.labels.le);
    expect(les).toEqual([
      '0.00025',
      '0.0005',
      '0.001',
      '0.0025',
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '+Inf',
    ]);
    expect(after.samples.some((x) => x.labels.route?.includes(ids[0]))).toBe(false);
    for (const name of ['amp_messages_routed_total', 'amp_messages_acked_total', 'amp_messages_pushed_total'])
      expect(after.types.get(name)).toBe('counter');
    expect(after.types.get('http_request_duration_seconds')).toBe('histogram');
    expect(after.types.get('amp_store_commit_duration_seconds')).toBe('histogram');
  });

  it('queue depth: the total and the deepest queues by address', async () => {
    const carol = await register(s.t.api, 'carol', 'acme');
    const before = await scrape(s.t.url);
    for (let i = 0; i < 3; i++) await routeOk(s.t.api, alice, msg(carol, `q${i}`));
    await routeOk(s.t.api, alice, msg(bob, 'q-bob'));
    const after = await scrape(s.t.url);
    expect(value(after, 'amp_queue_depth') - value(before, 'amp_queue_depth')).toBe(4);
    expect(value(after, 'amp_queue_depth_top', { agent: carol.address })).toBe(3);
    const top = after.samples.filter((x) => x.name === 'amp_queue_depth_top');
    expect(top[0]!.labels.agent).toBe(carol.address); // deepest first
    expect(top.length).toBeLessThanOrEqual(10);
    expect(after.types.get('amp_queue_depth')).toBe('gauge');
  });

  it('counts a message that expired unacknowledged', async () => {
    const dave = await register(s.t.api, 'dave', 'acme');
    const before = await scrape(s.t.url);
    const expiresAt = Date.now() + 300;
    await routeOk(s.t.api, alice, msg(dave, 'soon', { expires_at: new Date(expiresAt).toISOString() }));
    // Wait for a known instant (the expiry), not for a guess; the next read drops the message.
    await sleep(Math.max(0, expiresAt - Date.now()) + 20);
    const pending = await call('GET', `${s.t.api}/messages/pending`, { key: dave.api_key });
    expect(pending.body.messages).toEqual([]);
    const after = await scrape(s.t.url);
    expect(value(after, 'amp_messages_expired_total') - value(before, 'amp_messages_expired_total')).toBe(1);
  });

  it('counts AID tokens issued and denied (by error code)', async () => {
    const erin = await register(s.t.api, 'erin', 'acme');
    await activeRegistration(s, erin);
    const before = await scrape(s.t.url);
    expect((await tokenFor(s, erin)).status).toBe(200);
    const bad = await tokenRequest(s, {
      fingerprint: erin.body.fingerprint,
      proof: tokenProof(newKeypair().privateKey, s.issuer),
    });
    expect(bad.body.error).toBe('invalid_proof');
    const after = await scrape(s.t.url);
    expect(value(after, 'aid_tokens_issued_total') - value(before, 'aid_tokens_issued_total')).toBe(1);
    const denied = { reason: 'invalid_proof' };
    expect(value(after, 'aid_tokens_denied_total', denied) - value(before, 'aid_tokens_denied_total', denied)).toBe(1);
  });

  it('keeps the metrics of issue 13 and the store, and adds process metrics (event-loop lag, CPU, memory)', async () => {
    const p = await scrape(s.t.url);
    for (const name of [
      'amp_agents_online',
      'amp_ws_sessions',
      'amp_ws_slow_consumer_pauses_total',
      'amp_ws_slow_consumer_closes_total',
      'amp_ws_invalid_utf8_closes_total',
      'amp_receipts_outbox_dropped_total',
      'amp_route_blocked_total',
      'amp_abuse_tracked_agents',
      'amp_uptime_seconds',
      'amp_agent_total_messages_24h',
      'amp_agent_blocked_24h',
      'amp_agent_quarantined_24h',
      'amp_agent_flagged_24h',
      'amp_store_file_bytes',
      'amp_store_entries',
      'amp_store_db_bytes',
      'amp_store_writable',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ])
      expect(p.types.has(name), name).toBe(true);
    expect(value(p, 'amp_agent_total_messages_24h', { agent: alice.address })).toBeGreaterThan(0);
    expect(value(p, 'amp_store_writable')).toBe(1);
  });

  it('each server counts its own traffic (a registry per server)', async () => {
    const other = await startTestServer({ rateLimits: 'off' });
    try {
      const x = await register(other.api, 'x');
      const y = await register(other.api, 'y');
      const before = await scrape(s.t.url);
      await routeOk(other.api, x, msg(y, 'elsewhere'));
      const mine = await scrape(s.t.url);
      const theirs = await scrape(other.url);
      expect(value(mine, 'amp_messages_routed_total', { method: 'rest' })).toBe(
        value(before, 'amp_messages_routed_total', { method: 'rest' }),
      );
      expect(value(theirs, 'amp_messages_routed_total', { method: 'rest' })).toBe(1);
    } finally {
      await other.close();
    }
  });
});

describe('AMP_METRICS_TOKEN', () => {
  const token = 'metrics-token-0123456789abcdef';
  let t: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    t = await startTestServer({ env: { AMP_METRICS_TOKEN: token } });
  });
  afterAll(() => t.close());

  it('401 JSON without the token or with another one; 200 with it', async () => {
    const refused: Record<string, string>[] = [{}, { Authorization: `Bearer ${token}x` }, { Authorization: token }];
    for (const headers of refused) {
      const r = await call('GET', `${t.url}/metrics`, { headers });
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ error: 'unauthorized' });
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
    await scrape(t.url, { Authorization: `Bearer ${token}` });
  });

  it("the README's curl block, as written (port rewritten to the test server's)", async () => {
    const script = readmeBlock('metrics-curl').replaceAll('localhost:23000', `127.0.0.1:${t.server.port}`);
    const { stdout } = await run('bash', ['-c', script], {
      env: { PATH: process.env.PATH ?? '', AMP_METRICS_TOKEN: token },
      timeout: 10_000,
    });
    expect(stdout).toMatch(/^# TYPE amp_messages_routed_total counter$/m);
    parseProm(stdout.endsWith('\n') ? stdout : `${stdout}\n`);
  });
});
