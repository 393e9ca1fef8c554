// Failed commits (a full disk, a full LMDB map, an I/O error) as the store reports them. Every
// write promise lmdb-js hands out goes through `Writes`, which
//  - turns a failed commit into an AmpError: 507 `insufficient_storage` for ENOSPC, EDQUOT, EFBIG
//    and MDB_MAP_FULL (the map size limit, a different condition from a full disk: both mean
//    "nothing more fits"), 503 `service_unavailable` for anything else;
//  - takes back what lmdb-js's read cache already shows of the failed write (a cached put stays
//    readable after its commit failed, so a registration that never committed would still log in);
//  - remembers that writes fail, for /health and /ready, and probes until a commit succeeds again
//    with room to spare, so the server recovers by itself once space is freed. A commit alone is
//    not enough: small writes still fit in pages LMDB freed earlier while the file cannot grow,
//    and readiness would flap between routes that fail and probes that pass;
//  - marks the `commitError` promise lmdb-js attaches to each failure as handled: lmdb-js rejects
//    it after every failed commit, and an unhandled rejection ends the process.
// lmdb-js also rejects a promise of its own that nobody holds (the start of each event-turn
// batch); `guardLmdbRejections` keeps that one from ending the process.
//
// A free-space floor keeps LMDB from meeting a full disk at all: lmdb-js 3.5.6 formats the error
// of a page write that fails with -1 (ENOSPC on a disk with no byte left) into a 100-byte malloc
// with sprintf (mdb.c, mdb_page_flush), which can overrun the heap and abort the process. So new
// data is refused with 507 before the file system is full (`assertRoom`): the free space is read
// with statfs on a timer (often when close to the floor), never per write, so every write of one
// event-loop turn (one LMDB transaction) gets the same answer. Removals (acks) are not refused:
// they let the queue drain. A disk filled by someone else can still fail a commit: see above.

import type { Database, Key } from 'lmdb';
import { AmpError } from '../../proto/index.js';

/** Seconds a client should wait before retrying a write refused for lack of storage. */
export const STORAGE_RETRY_AFTER_S = 10;
/** While writes fail, a small write is tried this often to notice that space was freed. */
const PROBE_EVERY_MS = 1000;
/** How often free space is read: often near the floor, seldom far above it. */
const ROOM_CHECK_NEAR_MS = 10;
const ROOM_CHECK_FAR_MS = 1000;
/** Above floor + this, the disk is "far" from full (a second of writes cannot cross it). */
const ROOM_FAR_BYTES = 256 * 1024 * 1024;

const ENOSPC = 28;
const EFBIG = 27;
const EDQUOT = 122;
const MDB_MAP_FULL = -30792;
/** LMDB reports a short write as EIO: on a file system that is (nearly) full, that is no room too. */
const EIO = 5;
const NO_ROOM_CODES = new Set([ENOSPC, EFBIG, EDQUOT, MDB_MAP_FULL]);
const NO_ROOM_TEXT = /no space left|MDB_MAP_FULL|quota exceeded|file too large/i;
const COMMIT_FAILED_TEXT = 'Commit failed';

export type WriteState = { ok: true } | { ok: false; reason: string; since: number };

interface CommitFailure {
  commitError?: unknown;
  message?: unknown;
}

const noop = () => {};

function isCommitFailure(e: unknown): e is CommitFailure {
  return (
    typeof e === 'object' &&
    e !== null &&
    'commitError' in e &&
    String((e as CommitFailure).message).startsWith(COMMIT_FAILED_TEXT)
  );
}

/** Mark lmdb-js's `commitError` promise handled; it rejects with the cause soon after. */
function handleCommitError(e: unknown): void {
  if (isCommitFailure(e) && e.commitError instanceof Promise) e.commitError.catch(noop);
}

/**
 * The cause of a failed write: lmdb-js rejects the write with "Commit failed" and, in the same
 * callback, its `commitError` promise with the LMDB error. Waits at most one event-loop turn.
 */
function causeOf(e: unknown): Promise<unknown> {
  if (!isCommitFailure(e) || !(e.commitError instanceof Promise)) return Promise.resolve(e);
  const ce = e.commitError;
  return new Promise((resolve) => {
    ce.then(() => resolve(e), resolve);
    setImmediate(() => resolve(e));
  });
}

function describe(cause: unknown, hasRoom: () => boolean): { noRoom: boolean; reason: string } {
  const code = (cause as { code?: unknown } | null)?.code;
  const text = String((cause as { message?: unknown } | null)?.message ?? cause);
  if (code === EIO && !hasRoom()) return { noRoom: true, reason: 'No space left on device (short write)' };
  const noRoom = (typeof code === 'number' && NO_ROOM_CODES.has(code)) || NO_ROOM_TEXT.test(text);
  return { noRoom, reason: text.split(':')[0]!.slice(0, 200) };
}

type CachingDb = { cache?: Map<unknown, { value?: unknown } | undefined> };

/** Drop what the read cache shows of a write that did not commit, unless a later write replaced it. */
export function uncache(db: Database<unknown, Key>, key: unknown, value: unknown): void {
  const cache = (db as unknown as CachingDb).cache;
  if (!cache || typeof key === 'object') return;
  const entry = Map.prototype.get.call(cache, key) as { value?: unknown } | undefined;
  if (entry && (entry.value === value || entry.value === undefined)) cache.delete(key);
}

export interface RoomOptions {
  /** Bytes free on the data dir's file system (statfs); undefined when it cannot be read. */
  freeBytes: () => number | undefined;
  /** New data is refused below this many free bytes. */
  floorBytes: number;
  /** After a refusal or a failed commit, writable again from this many free bytes. */
  resumeBytes: number;
}

export class Writes {
  private state: WriteState = { ok: true };
  private probeTimer: NodeJS.Timeout | undefined;
  private roomTimer: NodeJS.Timeout | undefined;
  /** Free bytes at the last check (Infinity when unknown). */
  private free = Number.POSITIVE_INFINITY;
  private stopped = false;
  /** Told the seconds from each transaction's first write to its commit (the commit-latency metric). */
  onCommit: ((seconds: number) => void) | undefined;
  private lastTimed: PromiseLike<unknown> | undefined;

  /** `probe` issues one small write; the store is writable again once it commits with room to spare. */
  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly room: RoomOptions,
  ) {
    this.checkRoom();
  }

  /** Refuse new data (507) while the disk is below the free-space floor; call before any state changes. */
  assertRoom(): void {
    if (this.free >= this.room.floorBytes) return;
    throw this.failed({ code: ENOSPC, message: `${this.lowReason()}` });
  }

  private lowReason(): string {
    const mib = (n: number) => (n / 1048576).toFixed(1);
    return `No space left on device: ${mib(this.free)} MiB free, below the ${mib(this.room.floorBytes)} MiB floor`;
  }

  private hasRoom(): boolean {
    const free = this.room.freeBytes();
    return free === undefined || free >= this.room.resumeBytes;
  }

  private checkRoom(): void {
    if (this.stopped) return;
    this.free = this.room.freeBytes() ?? Number.POSITIVE_INFINITY;
    if (this.free < this.room.floorBytes && this.state.ok) this.failed({ code: ENOSPC, message: this.lowReason() });
    const far = this.free - this.room.floorBytes > ROOM_FAR_BYTES;
    this.roomTimer = setTimeout(() => this.checkRoom(), far ? ROOM_CHECK_FAR_MS : ROOM_CHECK_NEAR_MS);
    this.roomTimer.unref();
  }

  put<K extends Key, V>(db: Database<V, K>, key: K, value: V): Promise<void> {
    return this.guard(db.put(key, value), () => uncache(db, key, value));
  }

  remove<K extends Key>(db: Database<unknown, K>, key: K): Promise<void> {
    return this.guard(db.remove(key), () => uncache(db, key, undefined));
  }

  /** A write nobody waits for: its failure is noted (health) and goes no further. */
  background(p: Promise<unknown>): void {
    p.catch(noop);
  }

  /** Resolves once `p` commits; a failed commit rejects with the AmpError a client should see. */
  guard(p: PromiseLike<unknown>, undo?: () => void): Promise<void> {
    this.timed(p);
    return Promise.resolve(p).then(noop, (e: unknown) => this.failure(e, undo));
  }

  /**
   * Time the commit of the transaction `p` belongs to, once per transaction: lmdb-js gives the
   * writes of one event-loop turn (one transaction) the same promise, so only a new one is timed.
   */
  timed(p: PromiseLike<unknown>): void {
    const report = this.onCommit;
    if (!report || p === this.lastTimed) return;
    this.lastTimed = p;
    const t0 = performance.now();
    p.then(() => report((performance.now() - t0) / 1000), noop);
  }

  /** A write's commit failed: note it, undo what `undo` undoes, reject with the client's error. */
  async failure(e: unknown, undo?: () => void): Promise<never> {
    handleCommitError(e);
    undo?.();
    throw this.failed(await causeOf(e));
  }

  /** Whether writes commit now; the reason and since when (ms) if not. */
  writeState(): WriteState {
    return this.state;
  }

  /** The store closes: no more probes or checks. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.roomTimer);
    this.stopProbing();
  }

  private stopProbing(): void {
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
  }

  private tryProbe(): void {
    try {
      this.guard(this.probe()).then(
        () => this.probed(),
        () => {},
      );
    } catch {
      // The store closed meanwhile: nothing to probe.
      this.stopProbing();
    }
  }

  private probed(): void {
    if (this.state.ok || !this.hasRoom()) return;
    this.state = { ok: true };
    this.free = this.room.freeBytes() ?? Number.POSITIVE_INFINITY;
    this.stopProbing();
  }

  private failed(cause: unknown): AmpError {
    const { noRoom, reason } = describe(cause, () => this.hasRoom());
    if (this.state.ok) this.state = { ok: false, reason, since: Date.now() };
    else this.state = { ...this.state, reason };
    if (!this.probeTimer && !this.stopped) {
      this.probeTimer = setInterval(() => this.tryProbe(), PROBE_EVERY_MS);
      this.probeTimer.unref();
    }
    if (noRoom) {
      return new AmpError('insufficient_storage', 'The server is out of storage space; nothing was stored', {
        details: { reason },
        retryAfter: STORAGE_RETRY_AFTER_S,
      });
    }
    return new AmpError('service_unavailable', 'The store failed to write; nothing was stored', {
      details: { reason },
      retryAfter: STORAGE_RETRY_AFTER_S,
    });
  }
}

let guarded = false;

/**
 * lmdb-js rejects, after each failed commit, a promise no caller holds (the start instruction of
 * its event-turn batch). Such a rejection is a failed commit the store already reports through the
 * writes that were in it, so it is dropped here; any other unhandled rejection is thrown again,
 * ending the process as it would without this listener (unless someone else listens too).
 */
export function guardLmdbRejections(): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason) => {
    if (isCommitFailure(reason)) return handleCommitError(reason);
    // The cause itself, when no write of that transaction was waited on.
    if (reason instanceof Error && reason.stack?.includes('/lmdb/write.js')) return;
    if (process.listenerCount('unhandledRejection') === 1) throw reason;
  });
}
