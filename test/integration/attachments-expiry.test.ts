// Attachment lifetimes (§22) on the real store and files: an unconfirmed upload goes 2 h after its
// PUT, an upload URL never used goes with its expiry, a routed file 7 days after routing; the
// bytes go with the last attachment that shares them; a restart counts what is on disk again.
// The sweep is called with a clock set forward (the service's sweep takes `nowMs`).

import { existsSync, rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROUTED_TTL_MS, UNCONFIRMED_TTL_MS } from '../../src/attachments/service.js';
import type { AgentRecord } from '../../src/store/types.js';
import { openAttachmentService, type ServiceOnDisk, uploadDirect } from '../helpers/attachment-service.js';
import { sha256 } from '../helpers/attachments.js';
import { tempDir } from '../helpers/server.js';

const HOUR = 3600 * 1000;
const agent = { id: 'agt_owner', tenant: 'acme' } as AgentRecord;

let dir: string;
let on: ServiceOnDisk;
const uploaded = (bytes: Buffer) => uploadDirect(on.svc, agent, bytes);

beforeEach(async () => {
  dir = tempDir('amp-att-exp-');
  on = await openAttachmentService(dir);
});
afterEach(async () => {
  await on.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('attachment expiry', () => {
  it('an upload URL never used goes with its expiry', async () => {
    const r = await on.svc.init(
      agent,
      { filename: 'a', content_type: 'text/plain', size: 1, digest: sha256('x') },
      'http://x',
    );
    expect(await on.svc.sweep(Date.now() + HOUR - 60_000)).toBe(0);
    expect(await on.svc.sweep(Date.now() + HOUR + 1000)).toBe(1);
    expect(on.store.getAttachment(r.attachment_id)).toBeUndefined();
  });

  it('unreferenced uploads go 2 h after upload, bytes and all', async () => {
    const bytes = Buffer.from('unreferenced');
    const id = await uploaded(bytes);
    const path = on.svc.blobs.pathOf(sha256(bytes));
    expect(existsSync(path)).toBe(true);
    expect(on.svc.storedBytes).toBe(bytes.length);
    expect(await on.svc.sweep(Date.now() + UNCONFIRMED_TTL_MS - 60_000)).toBe(0);
    expect(await on.svc.sweep(Date.now() + UNCONFIRMED_TTL_MS + 1000)).toBe(1);
    expect(on.store.getAttachment(id)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
    expect(on.svc.storedBytes).toBe(0);
  });

  it('a file shared by two attachments stays until the last one goes; a restart counts it again', async () => {
    const bytes = Buffer.from('shared bytes');
    const first = await uploaded(bytes);
    const second = await uploaded(bytes);
    const path = on.svc.blobs.pathOf(sha256(bytes));
    // The second is routed: it lives 7 days.
    const rec = on.store.getAttachment(second)!;
    await on.store.putAttachment({
      ...rec,
      messageId: 'msg_1_a',
      recipientId: 'agt_r',
      routedAt: Date.now(),
      expiresAt: Date.now() + ROUTED_TTL_MS,
    });
    expect(on.svc.storedBytes).toBe(bytes.length); // one file on disk
    await on.close();
    on = await openAttachmentService(dir);
    expect(on.svc.storedBytes).toBe(bytes.length);
    expect(await on.svc.sweep(Date.now() + UNCONFIRMED_TTL_MS + 1000)).toBe(1);
    expect(on.store.getAttachment(first)).toBeUndefined();
    expect(existsSync(path)).toBe(true);
    expect(await on.svc.sweep(Date.now() + ROUTED_TTL_MS + 1000)).toBe(1);
    expect(on.store.getAttachment(second)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
  });
});
