// GET /openapi.json from the real server: a valid OpenAPI 3.1 document (checked by a standard
// validator) that covers the route table both ways, whose schemas are the TypeBox ones real
// requests and answers match, and whose error catalogs hold the codes real failures answer.

import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { afterAll, describe, expect, it } from 'vitest';
import { API_SCHEMAS, type ApiSchemaName } from '../../proto/api-schemas.js';
import { errorStatuses } from '../../src/transport/http/openapi-operation.js';
import { ROUTE_DOCS } from '../../src/transport/http/route-docs.js';
import {
  AID_GRANT,
  type AidServer,
  activeRegistration,
  asAdmin,
  introspect,
  requestRegistration,
  startAidServer,
  tokenFor,
  tokenRequest,
} from '../helpers/aid.js';
import { readmeBlock } from '../helpers/readme.js';
import { call, newKeypair, type Registered, register, route, startTestServer, tempDir } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const run = promisify(execFile);
const NOTE = { type: 'notification', message: 'hello' };
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let s: AidServer;
let doc: any;
let alice: Registered;
let bob: Registered;
setupOrFailEveryTest(async () => {
  s = await startAidServer();
  const r = await fetch(`${s.t.url}/openapi.json`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  doc = await r.json();
  alice = await register(s.t.api, 'alice', 'acme');
  bob = await register(s.t.api, 'bob', 'acme');
});
afterAll(() => s?.t.close());

/** Every operation of the document: `METHOD /path/{param}`, with the operation. */
function operations(d: any): [string, any][] {
  return Object.entries(d.paths).flatMap(([path, item]: [string, any]) =>
    Object.entries(item)
      .filter(([m]) => METHODS.includes(m))
      .map(([m, op]): [string, any] => [`${m.toUpperCase()} ${path}`, op]),
  );
}

/** The operation a concrete request lands on: of the templates that match, the one with fewest parameters. */
function documentKeyOf(method: string, path: string): string {
  const matches = operations(doc)
    .map(([k]) => k)
    .filter((k) => new RegExp(`^${k.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/]+')}$`).test(`${method} ${path}`))
    .sort((a, b) => a.split('{').length - b.split('{').length);
  expect(matches, `${method} ${path}`).not.toEqual([]);
  return matches[0];
}

/** A route-docs key (`:param`) as a document key (`{param}`). */
const templated = (key: string) => key.replace(/:(\w+)/g, '{$1}');

/** The schema a `$ref` names, checked to be the TypeBox schema of that name (so Value.Check applies). */
function schemaOf(ref: string): TSchema {
  const name = ref.replace('#/components/schemas/', '') as ApiSchemaName;
  expect(doc.components.schemas[name]).toEqual(JSON.parse(JSON.stringify(API_SCHEMAS[name])));
  return API_SCHEMAS[name];
}

function expectMatches(ref: string, value: unknown): void {
  const schema = schemaOf(ref);
  const errors = [...Value.Errors(schema, value)].map((e) => `${e.path}: ${e.message}`);
  expect(errors, `${ref}: ${JSON.stringify(value)}`).toEqual([]);
}

const successSchema = (key: string, status = '200') => {
  const [method, path] = key.split(' ');
  return doc.paths[path][method.toLowerCase()].responses[status].content['application/json'].schema.$ref;
};

/** The codes the document lists for `method path` at `status`. */
const documentedErrors = (method: string, path: string, status: number): string[] =>
  doc.paths[path][method].responses[String(status)].content['application/json'].schema.allOf[1].properties.error.enum;

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document (standard validator)', async () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    const result = await new Validator().validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('is refused by the validator once broken (the check can fail)', async () => {
    const broken = structuredClone(doc);
    delete broken.paths['/api/v1/route'].post.responses['200'].description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('names AMP_PUBLIC_URL as its server when that is set', async () => {
    const other = await startTestServer({ publicUrl: 'https://amp.example.com/' });
    try {
      const r = await fetch(`${other.url}/openapi.json`);
      expect(((await r.json()) as any).servers).toEqual([{ url: 'https://amp.example.com' }]);
      expect(r.headers.get('vary')).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('names the server it was fetched from, and is served under the API mounts too', async () => {
    expect(doc.servers).toEqual([{ url: s.t.url }]);
    for (const path of ['/api/v1/openapi.json', '/v1/openapi.json']) {
      const r = await call('GET', s.t.url + path);
      expect(r.status).toBe(200);
      expect(r.body).toEqual(doc);
    }
  });

  it('documents every registered route (an entry in route-docs.ts each)', () => {
    const undocumented = operations(doc)
      .filter(([, op]) => op['x-undocumented'])
      .map(([k]) => k);
    expect(undocumented, 'add these to src/transport/http/route-docs.ts').toEqual([]);
  });

  it('has no route-docs.ts entry without a registered route, nor a code outside the catalogs', () => {
    const ops = operations(doc);
    const served = new Set(ops.map(([k]) => k));
    const stale = Object.keys(ROUTE_DOCS).filter((k) => !served.has(templated(k)));
    expect(stale, 'route-docs.ts entries that name no registered route').toEqual([]);
    const badCodes = Object.entries(ROUTE_DOCS).flatMap(([key, d]) =>
      (d.errors ?? [])
        .filter((code) => errorStatuses(code, /^\w+ \/:t\//.test(key)).length === 0)
        .map((c) => `${key}: ${c}`),
    );
    expect(badCodes, 'codes not in the catalog of the route (or a status it does not have)').toEqual([]);
    for (const [key, op] of ops) {
      expect(op.summary, key).toMatch(/\S/);
      expect(op.responses, key).toBeTypeOf('object');
    }
  });

  it('lists no path the server does not route (each is asked on the real server, under both mounts)', async () => {
    const fill = (path: string) => path.replace(/\{(\w+)\}/g, (_m, p) => (p === 'address' ? 'x@acme.local' : 'nobody'));
    const unrouted: string[] = [];
    for (const [key] of operations(doc)) {
      const [method, path] = key.split(' ');
      const paths = path.startsWith('/api/v1/') ? [path, path.replace('/api/v1/', '/v1/')] : [path];
      for (const p of paths) {
        const r = await call(method, s.t.url + fill(p));
        const routerSaidNo = r.status === 405 || String(r.body?.message ?? '').startsWith('No such endpoint:');
        if (routerSaidNo) unrouted.push(`${method} ${p}: ${r.status}`);
      }
    }
    expect(unrouted).toEqual([]);
  });

  it('gives each route its security from the guard', () => {
    const op = (m: string, p: string) => doc.paths[p][m];
    expect(op('post', '/api/v1/route').security).toEqual([{ apiKey: [] }, { apiKeyHeader: [] }]);
    expect(op('post', '/api/v1/register').security).toBeUndefined();
    expect(op('get', '/{t}/agent_registrations').security).toEqual([{ adminJwt: ['agent_registrations:read'] }]);
    expect(op('post', '/{t}/agent_registrations/request').security).toEqual([{ apiKeyHeader: [] }]);
    expect(op('post', '/api/v1/agents/{agent_id}/suspend').security).toEqual([{ adminJwt: ['amp:admin'] }]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([
      'adminJwt',
      'aidAccessToken',
      'apiKey',
      'apiKeyHeader',
      'metricsToken',
    ]);
    expect(op('get', '/api/v1/ws').responses['101']).toBeDefined();
  });
});

/** GET `path` with this Host header (fetch does not let a test choose it). */
function getWithHost(url: string, path: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { Host: host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /openapi.json: per request, and against the configuration', () => {
  it('gives each of 20 Host names its own servers URL (the text is spliced, nothing cached per Host)', async () => {
    const hosts = Array.from({ length: 20 }, (_, i) => `h${i}.example:8${String(i).padStart(3, '0')}`);
    for (const round of [1, 2])
      for (const host of hosts) {
        const got = JSON.parse(await getWithHost(s.t.url, '/openapi.json', host));
        expect(got.servers, `round ${round}, ${host}`).toEqual([{ url: `http://${host}` }]);
        expect(got.paths).toEqual(doc.paths);
      }
  });

  it('documents 401 on /metrics with an optional metricsToken, which a server with a token answers', async () => {
    const m = doc.paths['/metrics'].get;
    expect(m.security).toEqual([{}, { metricsToken: [] }]);
    expect(m.responses['401'].description).toMatch(/AMP_METRICS_TOKEN/);
    expect(doc.components.securitySchemes.metricsToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    const t = await startTestServer({ metricsToken: 'm3trics-t0ken' });
    try {
      const r = await call('GET', `${t.url}/metrics`);
      expect(r.status).toBe(401);
      expect(documentedErrors('get', '/metrics', 401)).toContain(r.body.error);
      expect((await call('GET', `${t.url}/metrics`, { key: 'm3trics-t0ken' })).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it("says admin routes' 401 is about the admin JWT, and that agent_id may be an address there", () => {
    for (const [method, path] of [
      ['get', '/api/v1/admin/agents'],
      ['delete', '/api/v1/admin/agents/{agent_id}'],
      ['post', '/api/v1/agents/{agent_id}/suspend'],
    ]) {
      const op = doc.paths[path][method];
      expect(op.security, path).toEqual([{ adminJwt: ['amp:admin'] }]);
      expect(op.responses['401'].description, path).toMatch(/admin JWT/);
      expect(op.responses['401'].description, path).not.toMatch(/API key/);
    }
    const param = doc.paths['/api/v1/admin/agents/{agent_id}'].delete.parameters[0];
    expect(param).toMatchObject({ name: 'agent_id', in: 'path' });
    expect(param.description).toMatch(/address/);
  });

  it('sends the configured AMP_CORS_ORIGIN, not *', async () => {
    expect((await call('GET', `${s.t.url}/openapi.json`)).headers.get('access-control-allow-origin')).toBe('*');
    const t = await startTestServer({ corsOrigin: 'https://app.example' });
    try {
      for (const path of ['/openapi.json', '/api/v1/openapi.json']) {
        const r = await call('GET', t.url + path);
        expect(r.status).toBe(200);
        expect(r.headers.get('access-control-allow-origin'), path).toBe('https://app.example');
      }
    } finally {
      await t.close();
    }
  });
});

describe('schemas against real requests and answers', () => {
  it('a register body the server accepts matches RegisterBody, its answer RegisterResponse', async () => {
    const ref = doc.paths['/api/v1/register'].post.requestBody.content['application/json'].schema.$ref;
    expect(ref).toBe('#/components/schemas/RegisterBody');
    const carol = await register(s.t.api, 'carol', 'acme');
    expectMatches(ref, { name: 'carol', tenant: 'acme', public_key: carol.keys.publicPem, key_algorithm: 'Ed25519' });
    expectMatches(successSchema('POST /api/v1/register', '201'), carol.body);
    // A body the schema refuses (no name) is refused by the server too, with the catalog's code.
    const nameless = { tenant: 'acme', public_key: carol.keys.publicPem };
    expect(Value.Check(schemaOf(ref), nameless)).toBe(false);
    const r = await call('POST', `${s.t.api}/register`, { json: nameless });
    expect([r.status, r.body.error, r.body.field]).toEqual([400, 'missing_field', 'name']);
  });

  it('route bodies (flat and envelope form) match RouteRequest; the answers match theirs', async () => {
    const ref = doc.paths['/api/v1/route'].post.requestBody.content['application/json'].schema.$ref;
    const body = { to: bob.address, subject: 'hi', payload: NOTE };
    const wrapped = { envelope: { to: bob.address, subject: 'hi again' }, payload: NOTE };
    expectMatches(ref, body);
    expectMatches(ref, wrapped);
    expect(Value.Check(schemaOf(ref), { to: bob.address, subject: 'no payload' })).toBe(false);
    const enveloped = await route(s.t.api, alice, wrapped);
    expect(enveloped.status).toBe(200);
    await call('DELETE', `${s.t.api}/messages/pending/${enveloped.body.id}`, { key: bob.api_key });
    const sent = await route(s.t.api, alice, body);
    expect(sent.status).toBe(200);
    expectMatches(successSchema('POST /api/v1/route'), sent.body);
    const pending = await call('GET', `${s.t.api}/messages/pending`, { key: bob.api_key });
    expect(pending.body.count).toBe(1);
    expectMatches(successSchema('GET /api/v1/messages/pending'), pending.body);
    const ack = await call('DELETE', `${s.t.api}/messages/pending/${sent.body.id}`, { key: bob.api_key });
    expectMatches(successSchema('DELETE /api/v1/messages/pending/{id}'), ack.body);
    const health = await call('GET', `${s.t.api}/health`);
    expectMatches(successSchema('GET /api/v1/health'), health.body);
  });

  it('agent, key and discovery answers match their schemas', async () => {
    const erin = await register(s.t.api, 'erin', 'acme');
    const answers: [string, string, unknown?][] = [
      ['GET', '/api/v1/agents/me'],
      ['PATCH', '/api/v1/agents/me', { alias: 'E' }],
      ['GET', '/api/v1/agents/me/card'],
      ['GET', '/api/v1/agents'],
      ['GET', `/api/v1/agents/resolve/${bob.address}`],
      ['POST', '/api/v1/auth/rotate-key'],
      ['DELETE', '/api/v1/agents/me'],
      ['GET', '/.well-known/agent-messaging.json'],
      ['GET', '/.well-known/jwks.json'],
      ['GET', '/acme/.well-known/jwks.json'],
      ['GET', '/acme/.well-known/openid-configuration'],
      ['GET', '/.well-known/oauth-protected-resource/acme'],
    ];
    for (const [method, path, json] of answers) {
      const r = await call(method, s.t.url + path, { key: erin.api_key, json });
      expect(r.status, `${method} ${path}: ${JSON.stringify(r.body)}`).toBe(200);
      expectMatches(successSchema(documentKeyOf(method, path)), r.body);
    }
  });

  it('AID registration answers match their schemas', async () => {
    const fay = await register(s.t.api, 'fay', 'acme');
    const asked = await requestRegistration(s, fay);
    expect(asked.status).toBe(202);
    expectMatches(successSchema('POST /{t}/agent_registrations/request', '202'), asked.body);
    const id = asked.body.data.id;
    const list = await asAdmin(s, 'GET', '');
    expectMatches(successSchema('GET /{t}/agent_registrations'), list.body);
    const one = await asAdmin(s, 'GET', `/${id}`);
    expectMatches(successSchema('GET /{t}/agent_registrations/{id}'), one.body);
    const approved = await asAdmin(s, 'POST', `/${id}/approve`, {});
    expect(approved.status).toBe(200);
    expectMatches(successSchema('POST /{t}/agent_registrations/{id}/approve'), approved.body);
    const token = await tokenFor(s, fay);
    const active = await introspect(s, token.body.access_token);
    expect(active.body.active).toBe(true);
    expectMatches(successSchema('POST /{t}/oauth/introspect'), active.body);
  });

  it('an AID token answer matches TokenResponse, and form bodies are documented for AID routes', async () => {
    await activeRegistration(s, alice);
    const r = await tokenFor(s, alice);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const token = doc.paths['/{t}/oauth/token'].post;
    expect(Object.keys(token.requestBody.content).sort()).toEqual([
      'application/json',
      'application/x-www-form-urlencoded',
    ]);
    expectMatches(successSchema('POST /{t}/oauth/token'), r.body);
    expectMatches(token.requestBody.content['application/json'].schema.$ref, {
      grant_type: AID_GRANT,
      fingerprint: alice.body.fingerprint,
      proof: 'x',
    });
  });
});

const ack = (id: string) => call('DELETE', `${s.t.api}/messages/pending/${id}`, { key: bob.api_key });
const requestAs = (key: string | undefined, json: unknown) =>
  call('POST', `${s.url}/agent_registrations/request`, { json, headers: key ? { 'X-Api-Key': key } : {} });
/** A new key under a name that is taken: 409 name_taken. */
const reRegister = (a: Registered) => ({ name: a.name, tenant: 'acme', public_key: newKeypair().publicPem });

describe('error catalogs', () => {
  const documented = documentedErrors;

  it('enumerates both catalogs in full', () => {
    const amp = doc.components.schemas.AmpErrorCode.anyOf.map((x: any) => x.const);
    expect(amp).toEqual(Object.keys(doc['x-error-catalogs'].amp));
    expect(amp).toHaveLength(48);
    const aid = doc.components.schemas.AidErrorCode.anyOf.map((x: any) => x.const);
    expect(aid).toEqual(Object.keys(doc['x-error-catalogs'].aid));
    expect(doc['x-error-catalogs'].amp.queue_full).toMatchObject({ http_status: 429, retry: true });
    expect(doc.components.schemas.AidError.required).toEqual(['error', 'error_description', 'errors']);
    expect(doc.components.schemas.AmpError.required).toEqual(['error', 'message', 'details']);
  });

  it('lists the codes real failures answer, under their status and shape', async () => {
    const dave = await register(s.t.api, 'dave', 'acme');
    const daveReg = await activeRegistration(s, dave);
    const nobody = alice.address.replace(/^alice@/, 'nobody@');
    const unknownId = 'msg_1700000000000_0123456789abcdef';
    const admin = { Authorization: `Bearer ${s.admin}` };
    const cases: [string, string, () => Promise<{ status: number; body: any }>][] = [
      ['post', '/api/v1/route', () => route(s.t.api, 'amp_live_sk_wrong', {})],
      ['post', '/api/v1/route', () => route(s.t.api, alice, { to: bob.address, subject: 'x' })],
      ['post', '/api/v1/route', () => route(s.t.api, alice, { to: nobody, subject: 'x', payload: NOTE })],
      ['post', '/api/v1/register', () => call('POST', `${s.t.api}/register`, { raw: '{', headers: {} })],
      ['post', '/api/v1/register', () => call('POST', `${s.t.api}/register`, { json: reRegister(dave) })],
      ['delete', '/api/v1/messages/pending/{id}', () => ack(unknownId)],
      ['delete', '/api/v1/messages/pending/{id}', () => ack('nope')],
      ['get', '/{t}/agent_registrations', () => call('GET', `${s.url}/agent_registrations`)],
      ['post', '/{t}/oauth/token', () => tokenRequest(s, { fingerprint: 'SHA256:x' })],
      ['post', '/{t}/oauth/token', () => call('POST', `${s.t.url}/nosuchtenant/oauth/token`, { json: {} })],
      ['post', '/{t}/oauth/token', () => tokenFor(s, bob)],
      ['post', '/{t}/agent_registrations/request', () => requestAs(undefined, {})],
      ['post', '/{t}/agent_registrations/request', () => requestAs(bob.api_key, {})],
      [
        'post',
        '/{t}/agent_registrations/{id}/approve',
        () => call('POST', `${s.url}/agent_registrations/${daveReg}/approve`, { headers: admin }),
      ],
    ];
    const seen = new Set<string>();
    for (const [method, path, send] of cases) {
      const r = await send();
      const shape = path.startsWith('/{t}') ? 'AidError' : 'AmpError';
      expect(r.status, `${method} ${path}: ${JSON.stringify(r.body)}`).toBeGreaterThanOrEqual(400);
      expect(documented(method, path, r.status), `${method} ${path} ${r.status}`).toContain(r.body.error);
      expectMatches(`#/components/schemas/${shape}`, r.body);
      seen.add(r.body.error);
    }
    // The cases reach past the guards: the routes' own codes are among them.
    for (const code of ['not_found', 'name_taken', 'agent_not_registered', 'validation_failed', 'invalid_transition'])
      expect(seen).toContain(code);
  });
});

describe('README', () => {
  it('runs the openapi block as written (localhost:23000 rewritten to the test server)', async () => {
    const block = readmeBlock('openapi');
    const dir = tempDir('amp-openapi-');
    try {
      const script = block.replaceAll('http://localhost:23000', s.t.url);
      const env = { PATH: process.env.PATH ?? '', HOME: dir, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' };
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir, env, timeout: 20_000 });
      expect(JSON.parse(readFileSync(join(dir, 'openapi.json'), 'utf8'))).toEqual(doc);
      expect(stdout.trim().split('\n')).toEqual(['3.1.0', String(operations(doc).length)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
