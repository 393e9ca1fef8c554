// Secrets every node of a cluster must share (the provider key, the AID signing keys), in the KV
// bucket `${prefix}_SECRETS`: the first node to start files its own, the others adopt them. Bytes
// in, bytes out: the caller reads and writes the files. Anyone holding the relay's NATS
// credentials can read this bucket (not encrypted at rest): give the relay its own NATS account.

import type { KV } from '@nats-io/kv';
import { AmpError } from '../../../proto/index.js';
import type { NatsParts } from './parts.js';

const unavailable = (cause: unknown) =>
  new AmpError('store_unavailable', `The cluster store did not answer: ${(cause as Error)?.message ?? cause}`, {
    retryAfter: 1,
  });

const START_TRIES = 5;
const START_RETRY_MS = 1000;

/** A KV create of a key that exists. */
const isWrongLastSequence = (e: unknown) => e instanceof Error && /wrong last sequence|10071/i.test(e.message);

export class SharedSecrets {
  private constructor(private readonly kv: KV) {}

  static async open(parts: NatsParts): Promise<SharedSecrets> {
    const bucket = `${parts.prefix}_SECRETS`;
    // Two nodes starting at once both create the bucket: the loser's create may fail; try again.
    for (let attempt = 1; ; attempt++) {
      try {
        return new SharedSecrets(await parts.kvm.create(bucket, { replicas: parts.replicas, history: 1 }));
      } catch (e) {
        if (attempt >= START_TRIES) throw unavailable(e);
        await new Promise((r) => setTimeout(r, START_RETRY_MS));
      }
    }
  }

  /** The stored value of `name`; undefined when none is stored. */
  async get(name: string): Promise<Uint8Array | undefined> {
    const e = await this.kv.get(name).catch((err: unknown) => {
      throw unavailable(err);
    });
    return e && e.operation === 'PUT' && e.value.length > 0 ? e.value : undefined;
  }

  /**
   * The cluster's value of `name`: the stored one, or else `mine()` filed as it (exactly one node
   * wins a race; the others get the winner's bytes). At start-up JetStream may still be electing
   * its leaders (a NATS server just restarted): a timeout is tried again, a few times.
   */
  async share(name: string, mine: () => Promise<Uint8Array>): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.shareOnce(name, mine);
      } catch (e) {
        if (attempt >= START_TRIES || !(e instanceof AmpError)) throw e;
        await new Promise((r) => setTimeout(r, START_RETRY_MS));
      }
    }
  }

  private async shareOnce(name: string, mine: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const held = await this.get(name);
    if (held) return held;
    const bytes = await mine();
    try {
      await this.kv.create(name, bytes);
      return bytes;
    } catch (e) {
      if (!isWrongLastSequence(e)) throw unavailable(e);
    }
    const winner = await this.get(name);
    if (!winner) throw unavailable(new Error(`shared secret ${name} vanished`));
    return winner;
  }

  /** Replace the stored value (after a local change, e.g. a signing key rotation). */
  async put(name: string, bytes: Uint8Array): Promise<void> {
    await this.kv.put(name, bytes).catch((err: unknown) => {
      throw unavailable(err);
    });
  }
}
