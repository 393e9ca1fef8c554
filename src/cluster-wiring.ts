// Cluster mode (AMP_STORE=nats): the NATS-backed store, and the secrets every node shares. The
// provider key and the AID signing keys live in the KV bucket `${prefix}_SECRETS`: before they
// are loaded, the stored ones are written into this node's data dir (the usual loaders then read
// them), or, on the first node, this node's are filed there.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { nodeIdOf, redactSeed } from './config/cluster.js';
import type { Config } from './config/schema.js';
import { loadOrCreateProviderKey, PROVIDER_KEY_FILE } from './crypto/provider-key.js';
import { KEY_FILE, SigningKeys } from './identity/signing-keys.js';
import { NatsStore } from './store/nats/index.js';
import { SharedSecrets } from './store/nats/secrets.js';
import type { StoreObserver } from './store/types.js';

export async function openClusterStore(config: Config, observer: StoreObserver, logger: Logger): Promise<NatsStore> {
  const nodeId = nodeIdOf(config);
  const store = await NatsStore.open(config, {
    nodeId,
    observer,
    onBackgroundError: (what, err) =>
      logger.warn({ err, what }, 'cluster store: recovering (a background step failed or was redone)'),
    onDebug: (what, err) => logger.debug({ err, what }, 'cluster store: a background step failed'),
  });
  try {
    await shareSecrets(store, config);
  } catch (e) {
    await store.close();
    throw e;
  }
  logger.info({ nodeId, nats: config.natsUrl.map(redactSeed), prefix: config.natsPrefix }, 'cluster store open');
  return store;
}

/** Adopt the cluster's provider key and signing keys, or file this node's when it is the first. */
async function shareSecrets(store: NatsStore, config: Config): Promise<void> {
  const secrets = await SharedSecrets.open(store.parts);
  const dir = config.dataDir;
  await adopt(secrets, 'provider_key', join(dir, PROVIDER_KEY_FILE), async () => {
    loadOrCreateProviderKey(dir);
  });
  await adopt(secrets, 'aid_signing_keys', join(dir, KEY_FILE), async () => {
    await SigningKeys.load(dir, config.aidJwtAlg, { rotationDays: config.aidKeyRotationDays });
  });
}

async function adopt(secrets: SharedSecrets, name: string, path: string, create: () => Promise<void>): Promise<void> {
  const shared = await secrets.share(name, async () => {
    await create();
    return new Uint8Array(readFileSync(path));
  });
  if (sameBytes(readIfThere(path), shared)) return;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, shared, { mode: 0o600 });
  renameSync(tmp, path);
}

function readIfThere(path: string): Uint8Array | undefined {
  try {
    return new Uint8Array(readFileSync(path));
  } catch {
    return undefined;
  }
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && Buffer.from(a).equals(Buffer.from(b));
}
