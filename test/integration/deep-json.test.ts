// Deep JSON before authentication (issue 13 item 8): a body nested past 64 levels is refused by a
// linear scan before JSON.parse runs (parsing a 520k-deep array costs ~0.2 s of CPU). The server
// runs in this process, so a spy on JSON.parse sees whether the body was ever parsed.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_REQUEST_BYTES } from '../../proto/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});
afterEach(() => vi.restoreAllMocks());

/** POST `body` to /register; the reply, and whether JSON.parse ever saw a text of the body's size. */
async function postRegister(body: string): Promise<{ status: number; reply: any; parsedBody: boolean }> {
  const parse = vi.spyOn(JSON, 'parse');
  const res = await fetch(`${t.api}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
  });
  const text = await res.text();
  const parsedBody = parse.mock.calls.some(([s]) => typeof s === 'string' && s.length >= body.length);
  parse.mockRestore();
  return { status: res.status, reply: JSON.parse(text), parsedBody };
}

describe('deep JSON to /register (no authentication)', () => {
  it.each([
    ['a 520k-deep array', '['.repeat(520_000) + ']'.repeat(520_000)],
    ['an object holding a 520k-deep array', `{"name":${'['.repeat(519_990)}${']'.repeat(519_990)}}`],
  ])('%s under the size limit → 400 invalid_request, JSON.parse never reached', async (_name, body) => {
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    const r = await postRegister(body);
    expect(r.status).toBe(400);
    expect(r.reply).toEqual({
      error: 'invalid_request',
      message: 'Request body refused: JSON nests deeper than 64 levels',
      details: {},
    });
    expect(r.parsedBody).toBe(false);
  });

  it('64 levels are still parsed (and then checked as a registration)', async () => {
    const body = `{"name":${'['.repeat(63)}${']'.repeat(63)}}`;
    const r = await postRegister(body);
    expect(r.status).toBe(400);
    expect(r.reply.error).not.toBe('invalid_request');
    expect(r.parsedBody).toBe(true);
  });
});
