// The transport's long-lived replies (src/transport/http/stream-reply.ts) against a stand-in for a
// uWS response: writes corked, a chunk uWS could not send makes later ones drop until the socket
// drains, a client stalled for STREAM_STALL_MS is disconnected, close callbacks run once, and
// nothing touches the response after an abort. And the live hub (src/console/live.ts): one timer
// for every stream, one snapshot per tick, no timer once the last stream closed.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { LIVE_TICK_MS, LiveHub, type LiveSources } from '../../src/console/live.js';
import { PauseControl } from '../../src/transport/http/flow.js';
import { OpenStreams, openStream, STREAM_STALL_MS, type StreamSink } from '../../src/transport/http/stream-reply.js';

class FakeRes {
  written: string[] = [];
  accept = true;
  corked = false;
  ended = false;
  closedConn = false;
  writable: (() => boolean) | undefined;
  cork(fn: () => void) {
    this.corked = true;
    fn();
    this.corked = false;
  }
  write(chunk: string) {
    if (!this.corked) throw new Error('write outside cork');
    this.written.push(chunk);
    return this.accept;
  }
  writeStatus() {}
  writeHeader() {}
  onWritable(cb: () => boolean) {
    this.writable = cb;
  }
  end() {
    this.ended = true;
  }
  close() {
    this.closedConn = true;
  }
  pause() {}
  resume() {}
}

function open(streams = new OpenStreams()) {
  const res = new FakeRes();
  let abort: (() => void) | undefined;
  let aborted = false;
  let sink!: StreamSink;
  const parts = {
    res: res as never,
    flow: new PauseControl(res as never),
    writeHead: () => {},
    isAborted: () => aborted,
    onAbort: (fn: () => void) => {
      abort = fn;
    },
  };
  openStream(parts, false, (s) => (sink = s), streams);
  return {
    res,
    sink,
    streams,
    abort: () => {
      aborted = true;
      abort?.();
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('stream replies', () => {
  it('drops writes while uWS holds an unsent chunk, until the socket drains', () => {
    const { res, sink } = open();
    expect(sink.write('a')).toBe(true);
    res.accept = false;
    expect(sink.write('b')).toBe(false); // buffered by uWS
    expect(sink.write('c')).toBe(false); // dropped: not handed to uWS
    expect(res.written).toEqual(['a', 'b']);
    res.accept = true;
    res.writable!();
    expect(sink.write('d')).toBe(true);
    expect(res.written).toEqual(['a', 'b', 'd']);
  });

  it('disconnects a client that took nothing for STREAM_STALL_MS', () => {
    vi.useFakeTimers();
    const { res, sink, streams } = open();
    const closed = vi.fn();
    sink.onClose(closed);
    res.accept = false;
    sink.write('a');
    vi.advanceTimersByTime(STREAM_STALL_MS - 1);
    expect(sink.write('b')).toBe(false);
    expect(res.closedConn).toBe(false);
    vi.advanceTimersByTime(1);
    sink.write('c');
    expect(res.closedConn).toBe(true);
    expect(closed).toHaveBeenCalledTimes(1);
    expect(sink.closed).toBe(true);
    expect(streams.size).toBe(0);
  });

  it('after an abort: close callbacks once, and the response is never touched again', () => {
    const { res, sink, abort, streams } = open();
    const closed = vi.fn();
    sink.onClose(closed);
    abort();
    expect(sink.write('x')).toBe(false);
    sink.close();
    expect(res.written).toEqual([]);
    expect(res.ended).toBe(false);
    expect(closed).toHaveBeenCalledTimes(1);
    expect(streams.size).toBe(0);
  });

  it('closeAll (shutdown) ends every open stream', () => {
    const streams = new OpenStreams();
    const a = open(streams);
    const b = open(streams);
    expect(streams.size).toBe(2);
    streams.closeAll();
    expect([a.res.ended, b.res.ended]).toEqual([true, true]);
    expect([a.sink.closed, b.sink.closed]).toEqual([true, true]);
    expect(streams.size).toBe(0);
  });
});

function fakeSources(): LiveSources & { calls: number; routed: number } {
  const s = {
    calls: 0,
    routed: 0,
    sessionsOnline: () => 0,
    agentsOnline: () => 0,
    routedTotal: () => {
      s.calls++;
      return s.routed;
    },
    pushedTotal: () => 0,
    queue: () => ({ depth: 0, oldestAgeS: null }),
    commitMs: () => null,
    health: () => ({ health: 'ok', ready: true }),
    outbound: () => [],
  };
  return s;
}

function fakeSink() {
  const chunks: string[] = [];
  const callbacks: Array<() => void> = [];
  return {
    chunks,
    write: (c: string) => chunks.push(c) > 0,
    close: () => {
      for (const cb of callbacks.splice(0)) cb();
    },
    onClose: (cb: () => void) => callbacks.push(cb),
  };
}

describe('live hub', () => {
  it('sends a snapshot at once, then one per tick computed once for all streams; no timer without streams', () => {
    vi.useFakeTimers();
    const src = fakeSources();
    const hub = new LiveHub(src);
    const a = fakeSink();
    const b = fakeSink();
    hub.add(a);
    hub.add(b);
    expect(a.chunks).toHaveLength(1);
    expect(b.chunks).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(1);
    const before = src.calls;
    src.routed = 5;
    vi.advanceTimersByTime(LIVE_TICK_MS);
    expect(src.calls - before).toBe(1);
    expect(a.chunks[1]).toBe(b.chunks[1]);
    const snap = JSON.parse(a.chunks[1]!.split('data: ')[1]!);
    expect(snap.routed_total).toBe(5);
    expect(snap.routed_per_s).toBe(5);
    a.close();
    expect(vi.getTimerCount()).toBe(1);
    b.close();
    expect(vi.getTimerCount()).toBe(0);
    hub.close();
    const late = fakeSink();
    const closed = vi.fn();
    late.onClose(closed);
    hub.add(late);
    expect(closed).toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
