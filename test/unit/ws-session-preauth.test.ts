// The 4 KiB frame limit before a WebSocket session is authenticated (issue 13 item 8), for the state
// an integration test cannot hold still: a signed auth frame is being verified ('authenticating').
// The session is driven directly with a fake connection; the verification never settles.
import { describe, expect, it } from 'vitest';
import { MAX_PREAUTH_FRAME_BYTES } from '../../proto/index.js';
import type { Frame } from '../../src/relay/frames.js';
import type { Connection } from '../../src/relay/sessions.js';
import { type SessionDeps, WsSession } from '../../src/relay/ws-session.js';

function session() {
  const sent: Record<string, unknown>[] = [];
  const closes: [number, string][] = [];
  const conn: Connection = {
    send: (f: Frame) => (sent.push(f.object), 'sent'),
    bufferedBytes: () => 0,
    ping: () => {},
    close: (code, reason) => void closes.push([code, reason]),
  };
  const deps = {
    agents: { authenticateSigned: () => new Promise(() => {}) },
    logger: { error: () => {} },
  } as unknown as SessionDeps;
  return { s: new WsSession(conn, deps, 'amp.v1', undefined), sent, closes };
}

const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const signedAuth = { type: 'auth', address: 'a@default.aimaestro.local', timestamp: 1, signature: 'c2ln' };

describe('WsSession before authentication', () => {
  it('while a signed auth is verified, a frame over 4 KiB gets an error frame and is dropped; the socket stays', () => {
    const { s, sent, closes } = session();
    s.message(text(signedAuth), false);
    const big = text({ type: 'ping', request_id: 'p', pad: 'x'.repeat(MAX_PREAUTH_FRAME_BYTES) });
    s.message(big, false);
    expect(closes).toEqual([]);
    expect(sent).toEqual([
      {
        type: 'error',
        error: 'invalid_request',
        message: `Frame of ${big.byteLength} bytes before authentication (at most 4096); frame dropped, send it once connected`,
      },
    ]);
  });

  it('a first frame over 4 KiB is never decoded: invalid_request, then close 4002', () => {
    const { s, sent, closes } = session();
    s.message(new TextEncoder().encode('['.repeat(MAX_PREAUTH_FRAME_BYTES + 1)), false);
    expect(sent).toMatchObject([{ type: 'error', error: 'invalid_request' }]);
    expect(closes).toEqual([[4002, 'auth_required']]);
  });
});
