// Attachment lifetimes (§22) on the real store and files: an unconfirmed upload goes 2 h after its
// PUT, an upload URL never used goes with its expiry, a routed file 7 days after routing; the
// bytes go with the last attachment that shares them; a restart counts what is on disk again.
// The sweep is called with a clock set forward (the service's sweep takes `nowMs`).

import { existsSync, rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/attachments/blobs.js';
import { ScanQueue } from '../../src/attachments/scan-queue.js';
import { createScanner } from '../../src/attachments/scan/index.js';
import { Attachments, ROUTED_TTL_MS, UNCONFIRMED_TTL_MS } from '../../src/attachments/service.js';
import { UrlSigner } from '../../src/attachments/urls.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import type { AgentRecord } from '../../src/store/types.js';
import { sha256 } from '../helpers/attachments.js';
import { tempDir } from '../helpers/server.js';

const HOUR = 3600 * 1000;
const agent = { id: 'agt_owner', tenant: 'acme' } as AgentRecord;

let dir: string;
let store: LmdbStore;
let svc: Attachments;
let scans: ScanQueue;

function open(): Attachments {
  store = new LmdbStore({ dataDir: dir });
  scans = new ScanQueue(createScanner({}), pino({ level: 'silent' }));
  svc = new Attachments(store, new BlobStore(dir), new UrlSigner(Buffer.alloc(32, 1)), scans);
  return svc;
}

async function closeAll(): Promise<void> {
  await scans.close();
  await store.close();
}

/** Declare and upload `bytes` (the PUT's body as one chunk); the attachment id. */
async function uploaded(bytes: Buffer): Promise<string> {
  const r = await svc.init(
    agent,
    { filename: 'f.txt', content_type: 'text/plain', size: bytes.length, digest: sha256(bytes) },
    'http://x/api/v1',
  );
  const q = new URLSearchParams(r.upload_url.split('?')[1]);
  await svc.upload(r.attachment_id, q, String(bytes.length), {
    pipe: async (sink) => {
      await sink(bytes);
      return bytes.length;
    },
  });
  return r.attachment_id;
}

beforeEach(async () => {
  dir = tempDir('amp-att-exp-');
  await open().open();
});
afterEach(async () => {
  await closeAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('attachment expiry', () => {
  it('an upload URL never used goes with its expiry', async () => {
    const r = await svc.init(
      agent,
      { filename: 'a', content_type: 'text/plain', size: 1, digest: sha256('x') },
      'http://x',
    );
    expect(await svc.sweep(Date.now() + HOUR - 60_000)).toBe(0);
    expect(await svc.sweep(Date.now() + HOUR + 1000)).toBe(1);
    expect(store.getAttachment(r.attachment_id)).toBeUndefined();
  });

  it('unreferenced uploads go 2 h after upload, bytes and all', async () => {
    const bytes = Buffer.from('unreferenced');
    const id = await uploaded(bytes);
    const path = svc.blobs.pathOf(sha256(bytes));
    expect(existsSync(path)).toBe(true);
    expect(svc.storedBytes).toBe(bytes.length);
    expect(await svc.sweep(Date.now() + UNCONFIRMED_TTL_MS - 60_000)).toBe(0);
    expect(await svc.sweep(Date.now() + UNCONFIRMED_TTL_MS + 1000)).toBe(1);
    expect(store.getAttachment(id)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
    expect(svc.storedBytes).toBe(0);
  });

  it('a file shared by two attachments stays until the last one goes; a restart counts it again', async () => {
    const bytes = Buffer.from('shared bytes');
    const first = await uploaded(bytes);
    const second = await uploaded(bytes);
    const path = svc.blobs.pathOf(sha256(bytes));
    // The second is routed: it lives 7 days.
    const rec = store.getAttachment(second)!;
    await store.putAttachment({
      ...rec,
      messageId: 'msg_1_a',
      recipientId: 'agt_r',
      routedAt: Date.now(),
      expiresAt: Date.now() + ROUTED_TTL_MS,
    });
    expect(svc.storedBytes).toBe(bytes.length); // one file on disk
    await closeAll();
    await open().open();
    expect(svc.storedBytes).toBe(bytes.length);
    expect(await svc.sweep(Date.now() + UNCONFIRMED_TTL_MS + 1000)).toBe(1);
    expect(store.getAttachment(first)).toBeUndefined();
    expect(existsSync(path)).toBe(true);
    expect(await svc.sweep(Date.now() + ROUTED_TTL_MS + 1000)).toBe(1);
    expect(store.getAttachment(second)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
  });
});
