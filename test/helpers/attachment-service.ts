// The attachments service without HTTP, on a real LMDB store and real files in `dataDir`: for
// lifetimes and races that need the sweeper's clock set forward (the service's sweep takes `nowMs`).

import { pino } from 'pino';
import { BlobStore } from '../../src/attachments/blobs.js';
import { ScanQueue } from '../../src/attachments/scan-queue.js';
import { createScanner } from '../../src/attachments/scan/index.js';
import { Attachments } from '../../src/attachments/service.js';
import { UrlSigner } from '../../src/attachments/urls.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import type { AgentRecord } from '../../src/store/types.js';
import { sha256 } from './attachments.js';

export interface ServiceOnDisk {
  store: LmdbStore;
  scans: ScanQueue;
  svc: Attachments;
  close(): Promise<void>;
}

/** Open (and `open()`) the service on `dataDir`, without antivirus. */
export async function openAttachmentService(dataDir: string): Promise<ServiceOnDisk> {
  const store = new LmdbStore({ dataDir });
  const scans = new ScanQueue(createScanner({}), pino({ level: 'silent' }));
  const svc = new Attachments(store, new BlobStore(dataDir), new UrlSigner(Buffer.alloc(32, 1)), scans);
  await svc.open();
  return {
    store,
    scans,
    svc,
    close: async () => {
      await scans.close();
      await store.close();
    },
  };
}

/** Declare `bytes` as `agent` and upload them (the PUT's body as one chunk); the attachment id. */
export async function uploadDirect(
  svc: Attachments,
  agent: AgentRecord,
  bytes: Buffer,
  filename = 'f.txt',
): Promise<string> {
  const d = { filename, content_type: 'text/plain', size: bytes.length, digest: sha256(bytes) };
  const r = await svc.init(agent, d, 'http://x/api/v1');
  const query = new URLSearchParams(r.upload_url.split('?')[1]);
  await svc.upload(r.attachment_id, query, String(bytes.length), {
    pipe: async (sink) => {
      await sink(bytes);
      return bytes.length;
    },
  });
  return r.attachment_id;
}
