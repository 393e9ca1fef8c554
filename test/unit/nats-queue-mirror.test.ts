// The in-memory parts of the NATS queue: the per-agent mirror (reads by seq past removed entries,
// compaction, restore after a failed ack), token encoding, record merging and commit waits.

import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken } from '../../src/store/nats/keys.js';
import type { StoredMsg } from '@nats-io/jetstream';
import { CatchUp } from '../../src/store/nats/queue-catch-up.js';
import { CommitWaits } from '../../src/store/nats/queue-commits.js';
import { type MirrorEntry, QueueMirror } from '../../src/store/nats/queue-mirror.js';
import { merge, RecordMirror } from '../../src/store/nats/queue-records.js';

function entry(seq: number, exp = 1e15): MirrorEntry {
  return { seq, id: `m${seq}`, json: `{"id":"m${seq}"}`, exp, rc: false, queuedAt: seq, gone: false };
}

describe('QueueMirror', () => {
  it('reads by seq past removed entries, compacts, and restores in seq order', () => {
    const m = new QueueMirror();
    for (let s = 1; s <= 300; s++) m.add('a', entry(s * 2));
    for (let s = 1; s <= 200; s++) m.remove('a', `m${s * 2}`);
    const q = m.of('a');
    expect(q.size).toBe(100);
    expect(q.lastSeq).toBe(600);
    const r = q.readFrom(0, 10, 0);
    expect(r.entries.map((e) => e.seq)).toEqual([402, 404, 406, 408, 410, 412, 414, 416, 418, 420]);
    expect(r.more).toBe(true);
    expect(q.readFrom(420, 1000, 0).entries[0]!.seq).toBe(422);
    expect(q.readFrom(600, 10, 0)).toEqual({ entries: [], scannedTo: 600, more: false });
    const back = [m.remove('a', 'm500')!, m.remove('a', 'm410')!];
    m.restore('a', back);
    expect([...q.byId.keys()].slice(0, 6)).toEqual(['m402', 'm404', 'm406', 'm408', 'm410', 'm412']);
    expect(q.readFrom(408, 1, 0).entries[0]!.id).toBe('m410');
    expect(m.depths(1)).toEqual({ total: 100, agents: [{ agentId: 'a', depth: 100 }] });
  });

  it('drops expired entries on a prune; a seq seen without an entry still moves lastSeq', () => {
    const m = new QueueMirror();
    m.add('a', entry(1, 100));
    m.add('a', entry(2, 300));
    expect(m.prune('a', 200).map((e) => e.id)).toEqual(['m1']);
    m.of('a').seen(7);
    expect(m.of('a').lastSeq).toBe(7);
    expect(m.clear('a')).toEqual(['m2']);
    expect(m.depths(3).total).toBe(0);
  });
});

describe('keys', () => {
  it('encodes to one subject token and back', () => {
    for (const t of ['', 'abc', 'a.b', 'x y*>', 'é=ü', 'agt_0123', '=']) {
      const e = encodeToken(t);
      expect(e).toMatch(/^[A-Za-z0-9_=-]+$/);
      expect(decodeToken(e)).toBe(t);
    }
    expect(encodeToken('a.b')).toBe('a=2Eb');
  });
});

describe('records', () => {
  it('merge keeps every mark either version has', () => {
    const r = new RecordMirror();
    r.apply('m', { r: 'a', f: 'b', e: 1, rd: 1 });
    const m = r.apply('m', { r: 'a', f: 'b', e: 1, a: 5 });
    expect(m).toEqual({ r: 'a', f: 'b', e: 1, rd: 1, a: 5 });
    expect(merge(m, { r: 'a', f: 'b', e: 1, a: 9 }).a).toBe(5);
  });
});

describe('CommitWaits', () => {
  it('resolves when the mirror passes the seq, or when the stream no longer has it; rejects past the bound', async () => {
    const gone = new Set<number>([5]);
    const w = new CommitWaits(async (seq) => gone.has(seq), 2500);
    w.start();
    const a = w.wait(3);
    w.advance(3);
    await a;
    await w.wait(2);
    await w.wait(5);
    await expect(w.wait(9)).rejects.toMatchObject({ code: 'store_unavailable' });
    const late = w.wait(10);
    w.stop();
    await expect(late).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});

describe('CatchUp', () => {
  it('hands over what is stored in order, jumps over deleted seqs, yields to the consumer, stops at the end', async () => {
    const stored = [3, 5, 6, 7, 8]; // 4 deleted
    let last = 2;
    const applied: string[] = [];
    const reads: number[] = [];
    const take = (seq: number) => {
      if (seq <= last) return false;
      last = seq;
      return true;
    };
    let finish: () => void = () => {};
    const c = new CatchUp({
      lastSeq: () => last,
      take,
      read: async (from) => {
        reads.push(from);
        // While the read from 4 is under way the consumer delivers 5 and 6.
        if (from === 4) for (const s of [5, 6]) if (take(s)) applied.push(`consumer ${s}`);
        const seq = stored.find((s) => s >= from);
        if (seq === undefined) setImmediate(finish);
        return seq === undefined ? null : ({ seq } as unknown as StoredMsg);
      },
      apply: (m) => applied.push(`catch-up ${m.seq}`),
      onError: (e) => {
        throw e;
      },
    });
    const ended = new Promise<void>((resolve) => {
      finish = resolve;
    });
    c.request(6);
    c.request(10); // extends the run under way, past the end of the stream
    await ended;
    expect(applied).toEqual(['catch-up 3', 'consumer 5', 'consumer 6', 'catch-up 7', 'catch-up 8']);
    expect(reads).toEqual([3, 4, 7, 8, 9]);
    expect(last).toBe(8);
  });
});
