// WsConnection's write queue against a stand-in for the uWS WebSocket that keeps uWS's rules: send()
// answers 2 (dropped) past maxBackpressure, and end() on an ended socket throws. The real
// server's behaviour (pushes, backpressure, slow consumers) is covered by the ws-* integration
// tests; this pins the edges they cannot reach on purpose.

import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'uWebSockets.js';
import { Frame } from '../../src/relay/frames.js';
import { type UserData, WsConnection } from '../../src/transport/ws/connection.js';

const SOFT = 1024;
const HARD = 4096;

class FakeUws {
  buffered = 0;
  written: string[] = [];
  corks = 0;
  ends: string[] = [];
  private dead = false;
  onEnd: () => void = () => {};
  private alive(): void {
    if (this.dead) throw new Error('Invalid access of closed uWS.WebSocket/SSLWebSocket.');
  }
  getBufferedAmount(): number {
    this.alive();
    return this.buffered;
  }
  cork(fn: () => void): void {
    this.alive();
    this.corks++;
    fn();
  }
  send(data: string): number {
    this.alive();
    if (this.buffered > HARD) return 2;
    this.written.push(data);
    return 1;
  }
  end(code: number, reason: string): void {
    this.alive();
    this.ends.push(`${code} ${reason}`);
    this.dead = true;
    this.onEnd();
  }
  ping(): void {}
}

function socket(): { ws: FakeUws; s: WsConnection } {
  const ws = new FakeUws();
  const s = new WsConnection(ws as unknown as WebSocket<UserData>, { softBytes: SOFT, hardBytes: HARD }, false);
  ws.onEnd = () => s.ended();
  return { ws, s };
}

const frame = (text: string) => new Frame({ type: 'pong', text });
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('WsConnection write queue', () => {
  it('frames sent in one turn are written together, in order, in one corked flush', async () => {
    const { ws, s } = socket();
    for (let i = 0; i < 5; i++) expect(s.send(frame(`f${i}`))).toBe('sent');
    expect(ws.written).toEqual([]);
    await nextTurn();
    expect(ws.corks).toBe(1);
    expect(ws.written.map((w) => JSON.parse(w).text)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
  });

  it('counts queued bytes as UTF-8, not UTF-16 units', () => {
    const { s } = socket();
    const f = frame('é✓😀'.repeat(10));
    s.send(f);
    expect(s.bufferedBytes()).toBe(Buffer.byteLength(f.json, 'utf8'));
    expect(s.bufferedBytes()).toBeGreaterThan(f.json.length);
  });

  it("refuses with 'dropped' (and queues nothing) a frame that would pass the hard limit", async () => {
    const { ws, s } = socket();
    ws.buffered = HARD - 100;
    expect(s.send(frame('x'.repeat(200)))).toBe('dropped');
    expect(s.bufferedBytes()).toBe(HARD - 100);
    expect(s.send(frame('ok'))).toBe('sent');
    await nextTurn();
    expect(ws.written.map((w) => JSON.parse(w).text)).toEqual(['ok']);
  });

  it('close() writes what is queued first, then ends the socket once', () => {
    const { ws, s } = socket();
    s.send(frame('error frame'));
    s.close(4003, 'key_revoked');
    expect(ws.written.map((w) => JSON.parse(w).text)).toEqual(['error frame']);
    expect(ws.ends).toEqual(['4003 key_revoked']);
    expect(s.send(frame('late'))).toBe('dropped');
  });

  it('close() on a socket whose flush meets a full uWS buffer ends it once (4501), without throwing', () => {
    const { ws, s } = socket();
    s.send(frame('queued'));
    ws.buffered = HARD + 1; // the client stopped reading meanwhile: uWS will drop
    expect(() => s.close(4009, 'replaced')).not.toThrow();
    expect(ws.ends).toEqual(['4501 slow_consumer']);
  });
});
