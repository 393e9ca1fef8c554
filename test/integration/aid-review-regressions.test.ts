// Regressions for the defects an independent review reproduced in the AID service (the scripts
// scratch/rv-*.mts): an admin suspend racing the agent's own deregistration, a T1 body that
// arrives after the agent deregistered or rotated its key, a cutoff that did not move within one
// second, an AMP suspension that a new approval did not lift, proof replays through scope spelling
// or proof encoding, long ids in the path, Agent Card signed identity documents, and the AID error
// shape of discovery and oversized bodies. Each test runs against the real server.

import http from 'node:http';
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../proto/index.js';
import {
  AID_GRANT,
  activeRegistration,
  activityLogs,
  asAdmin,
  expectAidError,
  introspect,
  jwtPayload,
  nowSeconds,
  registrationRequestBody,
  requestRegistration,
  startAidServer,
  statusSignature,
  tokenFor,
  tokenProof,
  tokenRequest,
  uniqueTs,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, route, signMessage, type Registered, type Reply } from '../helpers/server.js';

const TENANT = 'acme';

const registrations = async (s: AidServer) => {
  const r = await asAdmin(s, 'GET', '?records=1000');
  expect(r.status).toBe(200);
  return r.body.data.map((e: { attributes: Record<string, unknown> }) => e.attributes) as Record<string, any>[];
};

describe('AID review findings (regressions)', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer({ rateLimits: 'off' });
    // The tenant's AID routes stay reachable whoever of the agents under test deregisters.
    await register(s.t.api, 'bystander', TENANT);
  });
  afterAll(() => s.t.close());

  it("1. an admin suspend racing the agent's deregistration answers in the AID shape and is always audited", {
    timeout: 120_000,
  }, async () => {
    const deadline = Date.now() + 90_000;
    // Health round trips on another connection, each one at least one turn of the server's loop.
    const turns = async (n: number) => {
      for (let j = 0; j < n; j++) await call('GET', `${s.t.api}/health`);
    };
    for (let i = 0; i < 30 && Date.now() < deadline; i++) {
      const a = await register(s.t.api, `racer-${i}`, TENANT);
      const id = await activeRegistration(s, a);
      // Vary the interleaving without timers: one side starts first, the other 0-5 server turns
      // later. Locally, the deregistration wins the tenant lock after about two or three.
      const delFirst = i % 2 === 0;
      const lag = Math.floor(i / 2) % 6;
      const [del, sus] = await Promise.all([
        turns(delFirst ? 0 : lag).then(() => call('DELETE', `${s.t.api}/agents/me`, { key: a.api_key })),
        turns(delFirst ? lag : 0).then(() => asAdmin(s, 'POST', `/${id}/suspend`, { reason: 'race' })),
      ]);
      expect(del.status).toBe(200);
      if (sus.status !== 200) {
        expect(sus.status).toBeGreaterThanOrEqual(400);
        expect(sus.status).toBeLessThan(500);
        expect(sus.body.error).not.toBe('unauthorized');
        expectAidError(sus, sus.status, sus.body.error);
      }
      const detail = await asAdmin(s, 'GET', `/${id}`);
      expect(detail.status).toBe(200);
      if (detail.body.data.attributes.status === 'suspended') {
        expect((await activityLogs(s, id)).map((e) => e.event_type)).toContain('registration_suspended');
      }
      // The registration ends suspended whichever side won, and exactly one suspension is audited.
      expect(detail.body.data.attributes.status).toBe('suspended');
      expect((await activityLogs(s, id)).filter((e) => e.event_type === 'registration_suspended')).toHaveLength(1);
    }
  });

  /**
   * T1 with the headers (and so the API key check) sent now and the body held back until `between`
   * has run. A round trip on another connection, made after the first bytes left this process,
   * shows that the server has read the headers: they were waiting in the kernel before it.
   */
  function slowRequest(a: Registered, between: () => Promise<void>): Promise<Reply> {
    const body = JSON.stringify(registrationRequestBody(a));
    const u = new URL(`${s.url}/agent_registrations/request`);
    return new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          agent: false,
          headers: {
            'X-Api-Key': a.api_key,
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let d = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (d += c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, headers: new Headers(), body: d ? JSON.parse(d) : undefined }),
          );
        },
      );
      req.setTimeout(20_000, () => req.destroy(new Error('slow request timed out')));
      req.on('error', reject);
      req.write(body.slice(0, 10), () => {
        call('GET', `${s.t.api}/health`)
          .then(between)
          .then(
            () => req.end(body.slice(10)),
            (e) => {
              req.destroy();
              reject(e);
            },
          );
      });
    });
  }

  it('2a. a /request whose body arrives after the agent deregistered is 401 invalid_client; nothing is pending', async () => {
    const a = await register(s.t.api, 'slow-leaver', TENANT);
    const r = await slowRequest(a, async () => {
      expect((await call('DELETE', `${s.t.api}/agents/me`, { key: a.api_key })).status).toBe(200);
    });
    expectAidError(r, 401, 'invalid_client');
    // Refused when the body arrived (the key was good when the headers were read), not up front.
    expect(r.body.error_description).toMatch(/changed while the request was read/);
    const mine = (await registrations(s)).filter(
      (x) => x.address === a.address || x.fingerprint === a.body.fingerprint,
    );
    expect(mine.filter((x) => x.status === 'pending' || x.status === 'active')).toEqual([]);
  });

  it('2b. a /request whose body arrives after the agent rotated its keypair creates nothing for the old key', async () => {
    const a = await register(s.t.api, 'slow-rotator', TENANT);
    const oldFp = a.body.fingerprint as string;
    const nk = newKeypair();
    const r = await slowRequest(a, async () => {
      const rot = await call('POST', `${s.t.api}/auth/rotate-keys`, {
        key: a.api_key,
        json: {
          new_public_key: nk.publicPem,
          key_algorithm: 'Ed25519',
          proof: sign(null, Buffer.from(nk.publicPem, 'utf8'), a.keys.privateKey).toString('base64'),
        },
      });
      expect(rot.status).toBe(200);
    });
    expect([401, 422]).toContain(r.status);
    expectAidError(r, r.status, r.body.error);
    expect((await registrations(s)).filter((x) => x.fingerprint === oldFp)).toEqual([]);
  });

  it('3. suspend → reactivate → token → suspend → reactivate within one second leaves the token inactive', async () => {
    let sameSecond = false;
    for (let attempt = 0; attempt < 5 && !sameSecond; attempt++) {
      const a = await register(s.t.api, `cutoff-${attempt}`, TENANT);
      const id = await activeRegistration(s, a);
      const start = nowSeconds();
      expect((await asAdmin(s, 'POST', `/${id}/suspend`)).status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/reactivate`)).status).toBe(200);
      const tk = await tokenFor(s, a);
      expect(tk.status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/suspend`, { reason: 'again' })).status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/reactivate`)).status).toBe(200);
      // Only a run that stayed inside one second tells the old cutoff (= now) from the new one.
      sameSecond = nowSeconds() === start;
      const info = await introspect(s, tk.body.access_token);
      expect(info.status).toBe(200);
      expect(info.body.active).toBe(false);
      if (sameSecond) {
        // The token carries cutoff + 1 = start + 1; the second suspension must move past it.
        expect(jwtPayload(tk.body.access_token).iat).toBe(start + 1);
        expect(info.body).toEqual({ active: false, reason: 'token_revoked' });
      }
    }
    expect(sameSecond).toBe(true);
  });

  it('4. suspend then delete leaves the AMP agent suspended; a new request and approval lets it route again', async () => {
    const a = await register(s.t.api, 'comeback', TENANT);
    const b = await register(s.t.api, 'listener', TENANT);
    const send = () => {
      const m = { from: a.address, to: b.address, subject: 'hi', payload: { type: 'notification', message: 'x' } };
      return route(s.t.api, a, {
        to: b.address,
        subject: 'hi',
        payload: m.payload,
        signature: signMessage(a.keys.privateKey, m),
      });
    };
    expect((await send()).status).toBe(200);
    const id = await activeRegistration(s, a);
    expect((await asAdmin(s, 'POST', `/${id}/suspend`)).status).toBe(200);
    const refused = await send();
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('agent_suspended');
    expect((await asAdmin(s, 'DELETE', `/${id}`)).status).toBe(200);
    expect((await send()).body.error).toBe('agent_suspended');

    const again = await requestRegistration(s, a);
    expect(again.status).toBe(202);
    expect(again.body.data.id).not.toBe(id);
    const ap = await asAdmin(s, 'POST', `/${again.body.data.id}/approve`);
    expect(ap.status).toBe(200);
    expect(ap.body.data.attributes).toMatchObject({ status: 'active', amp_agent_id: a.agent_id });
    const routed = await send();
    expect([200, 201]).toContain(routed.status);
    expect((await tokenFor(s, a)).status).toBe(200);
  });

  it('5a. one token proof yields one token, however the scope is spelled', async () => {
    const a = await register(s.t.api, 'scope-replayer', TENANT);
    await activeRegistration(s, a);
    const proof = tokenProof(a.keys.privateKey, s.issuer);
    const outcomes: Reply[] = [];
    for (const scope of [undefined, 'agent:identity', ' agent:identity', 'agent:identity agent:identity']) {
      const fields: Record<string, string> = { fingerprint: a.body.fingerprint, proof };
      if (scope !== undefined) fields.scope = scope;
      outcomes.push(await tokenRequest(s, fields));
    }
    expect(outcomes.map((r) => r.status)).toEqual([200, 400, 400, 400]);
    for (const r of outcomes.slice(1)) {
      expectAidError(r, 400, 'invalid_proof');
      expect(r.body.error_description).toMatch(/already used/);
    }
  });

  it('5b. a status proof re-encoded from the text form into the raw form is a replay (401 invalid_proof)', async () => {
    const a = await register(s.t.api, 'encoding-replayer', TENANT);
    const req = await requestRegistration(s, a);
    expect(req.status).toBe(202);
    const ts = uniqueTs();
    const sig = statusSignature(a.keys.privateKey, s.issuer, ts);
    const textForm = Buffer.from(sig.toString('base64') + ts).toString('base64url');
    const rawForm = Buffer.concat([sig, Buffer.from(String(ts))]).toString('base64url');
    const poll = (proof: string) =>
      call('POST', `${s.url}/agent_registrations/${req.body.data.id}/status`, {
        json: { fingerprint: a.body.fingerprint, proof },
      });
    const first = await poll(textForm);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ error: 'authorization_pending', status: 'pending' });
    const again = await poll(rawForm);
    expectAidError(again, 401, 'invalid_proof');
    expect(again.body.error_description).toMatch(/already used/);
  });

  it('6. a 6000-character registration id in the path is 404 not_found, never 500', async () => {
    const a = await register(s.t.api, 'long-id', TENANT);
    const id = 'x'.repeat(6000);
    const replies = {
      status: await call('POST', `${s.url}/agent_registrations/${id}/status`, {
        json: { fingerprint: a.body.fingerprint },
      }),
      get: await asAdmin(s, 'GET', `/${id}`),
      approve: await asAdmin(s, 'POST', `/${id}/approve`, {}),
      logs: await asAdmin(s, 'GET', `/${id}/activity_logs`),
    };
    for (const r of Object.values(replies)) expectAidError(r, 404, 'not_found');
  });

  it('7. an identity document signed in the Agent Card form is accepted; a broken signature is invalid_grant', async () => {
    const a = await register(s.t.api, 'card-signer', TENANT);
    const id = await activeRegistration(s, a);
    const t = Date.now();
    const fields = {
      aid_version: '1.0',
      address: a.address,
      alias: a.name,
      public_key: a.keys.publicPem,
      key_algorithm: 'Ed25519',
      fingerprint: a.body.fingerprint,
      issued_at: new Date(t - 1000).toISOString(),
      expires_at: new Date(t + 86_400_000).toISOString(),
    };
    const cardSig = sign(null, Buffer.from('amp-agent-card-v1\n' + canonicalJson(fields), 'utf8'), a.keys.privateKey);
    const doc = (signature: string) => Buffer.from(JSON.stringify({ ...fields, signature })).toString('base64url');

    const ok = await tokenRequest(s, {
      agent_identity: doc(cardSig.toString('base64')),
      proof: tokenProof(a.keys.privateKey, s.issuer),
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', agent_id: id, agent_address: a.address });

    const broken = Buffer.from(cardSig);
    broken[0] ^= 0xff;
    const bad = await tokenRequest(s, {
      agent_identity: doc(broken.toString('base64')),
      proof: tokenProof(a.keys.privateKey, s.issuer),
    });
    expectAidError(bad, 400, 'invalid_grant');
  });

  it('8. discovery and JWKS of an unknown tenant are 404 in the AID shape; a 40 KB token body is 413 invalid_request', async () => {
    for (const path of [
      '/nosuch/.well-known/jwks.json',
      '/nosuch/.well-known/openid-configuration',
      '/nosuch/.well-known/oauth-authorization-server',
      '/nosuch/.well-known/oauth-protected-resource',
      '/.well-known/openid-configuration/nosuch',
      '/.well-known/oauth-authorization-server/nosuch',
    ]) {
      const r = await call('GET', `${s.t.url}${path}`);
      expectAidError(r, 404, 'not_found');
    }
    const big = await call('POST', `${s.url}/oauth/token`, {
      headers: { 'Content-Type': 'application/json' },
      raw: JSON.stringify({ grant_type: AID_GRANT, pad: 'x'.repeat(40_000) }),
    });
    expect(big.status).toBe(413);
    expect(big.body.error).toBe('invalid_request');
    expectAidError(big, 413, 'invalid_request');
  });
});
