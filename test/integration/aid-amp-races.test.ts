// AID and AMP changes that overlap in time (agent-identity §13): an admin suspend racing the
// agent's own deregistration, and a T1 request whose body arrives after the agent deregistered or
// rotated its keypair, end in a consistent, audited state with AID-shaped errors. The interleaving
// is varied with round trips on other connections (each at least one turn of the server's loop),
// never with timers.

import http from 'node:http';
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeRegistration,
  activityLogs,
  asAdmin,
  expectAidError,
  registrationRequestBody,
  startAidServer,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, type Registered, type Reply } from '../helpers/server.js';

const TENANT = 'acme';

const registrations = async (s: AidServer) => {
  const r = await asAdmin(s, 'GET', '?records=1000');
  expect(r.status).toBe(200);
  return r.body.data.map((e: { attributes: Record<string, unknown> }) => e.attributes) as Record<string, any>[];
};

describe('AID transitions overlapping AMP changes', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer({ rateLimits: 'off' });
    // The tenant's AID routes stay reachable whoever of the agents under test deregisters.
    await register(s.t.api, 'bystander', TENANT);
  });
  afterAll(() => s.t.close());

  it("an admin suspend racing the agent's deregistration answers in the AID shape and is always audited", {
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

  it('a /request whose body arrives after the agent deregistered is 401 invalid_client; nothing is pending', async () => {
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

  it('a /request whose body arrives after the agent rotated its keypair creates nothing for the old key', async () => {
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
});
