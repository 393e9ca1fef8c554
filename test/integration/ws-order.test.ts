// Per-sender order whatever the Ed25519 verifier (issue 13 item 10): node:crypto verifies on the
// libuv pool, where callbacks complete out of order; one sender's pipelined route frames, signed and
// unsigned mixed, must still be queued (and pushed) in the order they were sent.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, signMessage, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

const FRAMES = 500;

let t: TestServer;
let alice: Registered;
let bob: Registered;

beforeAll(async () => {
  t = await startTestServer({ ed25519: 'node', rateLimits: 'off', maxQueue: 10_000 });
  [alice, bob] = await Promise.all([register(t.api, 'alice', 'acme'), register(t.api, 'bob', 'acme')]);
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

describe('per-sender order with AMP_ED25519=node', () => {
  it(`${FRAMES} pipelined route frames, signed and unsigned mixed, reach the recipient in send order`, {
    timeout: 60_000,
  }, async () => {
    const receiver = await connectWs(t.server.wsUrl, bob.api_key);
    const sender = await connectWs(t.server.wsUrl, alice.api_key);
    const frames: string[] = [];
    for (let i = 0; i < FRAMES; i++) {
      const subject = `m${i}`;
      const payload = { type: 'notification', message: `n${i}` };
      const data: Record<string, unknown> = { to: bob.address, subject, payload };
      // Runs of signed frames and of unsigned ones, and single ones between them.
      if (i % 7 < 4 || i % 11 === 0)
        data.signature = signMessage(alice.keys.privateKey, { from: alice.address, to: bob.address, subject, payload });
      frames.push(JSON.stringify({ type: 'route', request_id: `r${i}`, data }));
    }
    // Back to back, without waiting for any answer.
    for (const f of frames) sender.sendText(f);
    await sender.until(
      () => sender.frames.of('route.result').length === FRAMES,
      `${FRAMES} route.result frames`,
      50_000,
    );
    const failed = sender.frames.of('route.result').filter((f) => f.error !== undefined);
    expect(failed).toEqual([]);
    await receiver.until(() => receiver.frames.seen.size === FRAMES, `${FRAMES} pushes`, 20_000);
    const subjects = receiver.frames
      .of('message.new')
      .map((f) => f.data.envelope.subject as string)
      .filter((s, i, all) => all.indexOf(s) === i);
    const inversions = subjects.filter((s, i) => i > 0 && Number(s.slice(1)) < Number(subjects[i - 1].slice(1)));
    expect(inversions).toEqual([]);
    expect(subjects).toEqual(Array.from({ length: FRAMES }, (_, i) => `m${i}`));
    // Both kinds were in the mix: the signed ones verified.
    const trusted = receiver.frames.of('message.new').filter((f) => f.data.security.signature_verified).length;
    expect(trusted).toBeGreaterThan(FRAMES / 3);
  });
});
