// Creating a KV bucket when another node may be creating it at the same moment: the client reads
// the stream's info, finds none and adds it; a concurrent add by another node can then be refused
// ("subjects overlap with an existing stream", "stream name already in use"). Once the other add
// has landed, a second try finds the stream and adopts it.

import type { KV, KvOptions, Kvm } from '@nats-io/kv';

const TRIES = 5;
const RETRY_MS = 200;

const RACE_RE = /subjects overlap|already in use/i;

export async function createBucket(kvm: Kvm, name: string, opts: Partial<KvOptions>): Promise<KV> {
  for (let i = 1; ; i++) {
    try {
      return await kvm.create(name, opts);
    } catch (e) {
      if (i >= TRIES || !RACE_RE.test(String((e as Error)?.message))) throw e;
      await new Promise((r) => setTimeout(r, RETRY_MS * i));
    }
  }
}
