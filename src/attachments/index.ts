// The attachments service as the server builds it (§22): files on disk beside the store, signed
// URLs, the scan queue, the route's gate and the operators' approvals; off when AMP_ATTACHMENTS=false.

import type { Logger } from 'pino';
import { parseClamdHost } from '../config/clamd.js';
import type { Config } from '../config/schema.js';
import { derivedSecret } from '../crypto/provider-key.js';
import type { RelayContext } from '../relay/context.js';
import type { Store } from '../store/types.js';
import { AttachmentAdmin } from './admin.js';
import { BlobStore } from './blobs.js';
import { AttachmentGate } from './gate.js';
import { ScanQueue } from './scan-queue.js';
import { type ClamdTarget, createScanner } from './scan/index.js';
import { Attachments } from './service.js';
import { UrlSigner } from './urls.js';

const SWEEP_EVERY_MS = 60_000;

export function clamdTarget(config: Config): ClamdTarget | undefined {
  if (config.clamdSocket) return { socket: config.clamdSocket };
  // check-config refused a value that does not parse before the server got here.
  return config.clamdHost ? parseClamdHost(config.clamdHost) : undefined;
}

export interface AttachmentService {
  attachments: Attachments;
  gate: AttachmentGate;
  scans: ScanQueue;
  admin: AttachmentAdmin;
  /** Stop the sweeper and the scans (before the store closes). */
  close(): Promise<void>;
}

/** Build and open the service; `endpoint` gives the API base for URLs when a request does not. */
export async function openAttachments(
  ctx: RelayContext,
  store: Store,
  endpoint: () => string,
): Promise<AttachmentService | undefined> {
  const { config, logger } = ctx;
  if (!config.attachments) return undefined;
  const scans = new ScanQueue(createScanner({ clamd: clamdTarget(config) }), logger);
  const urls = new UrlSigner(derivedSecret(ctx.providerKey, 'attachment urls'));
  const attachments = new Attachments(store, new BlobStore(config.dataDir), urls, scans);
  await attachments.open();
  const stopSweep = startSweeper(attachments, logger);
  return {
    attachments,
    scans,
    gate: new AttachmentGate(attachments, endpoint),
    admin: new AttachmentAdmin(attachments, store, (id) => store.getAgent(id)?.address),
    close: async () => {
      stopSweep();
      await attachments.drain();
      await scans.close();
    },
  };
}

function startSweeper(attachments: Attachments, logger: Logger): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    attachments
      .sweep()
      .then((removed) => {
        if (removed > 0) logger.debug({ removed }, 'attachment sweep');
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'attachment sweep failed'))
      .finally(() => (running = false));
  }, SWEEP_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
