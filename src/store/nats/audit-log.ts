// The AID audit trail (records of kind 'audit') in cluster mode: a stream `${prefix}_AUDIT`, one
// subject per tenant (`amp.<prefix>.audit.<tenant>`), every event one message, kept (limits
// retention, no age limit, as LMDB keeps them). Every node reads the whole stream into memory and
// answers in key order (`tenant/<ms>/<id>`), as the LMDB range read does. A message is the key as
// a JSON string, a newline, then the value's JSON text.

import { randomUUID } from '../../crypto/random.js';
import { RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { APPLY_TIMEOUT_MS, guarded, unavailable } from './failures.js';
import { encodeToken as enc } from './kv-keys.js';
import { OrderedMap } from './ordered-map.js';
import type { NatsParts } from './parts.js';
import { rideOut } from './retry.js';
import { StreamMirror } from './stream-mirror.js';

const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;
const decoder = new TextDecoder();

export class AuditLog {
  /** Key -> value JSON text. */
  readonly events = new OrderedMap<string>();
  private readonly stream: string;
  private readonly subjectPrefix: string;
  private readonly mirror: StreamMirror;

  constructor(private readonly parts: NatsParts) {
    this.stream = `${parts.prefix}_AUDIT`;
    this.subjectPrefix = `amp.${parts.prefix}.audit`;
    this.mirror = new StreamMirror(parts, {
      stream: this.stream,
      filter: `${this.subjectPrefix}.>`,
      lastPerSubject: false,
      apply: (m) => {
        const text = decoder.decode(m.data);
        const nl = text.indexOf('\n');
        this.events.set(JSON.parse(text.slice(0, nl)) as string, text.slice(nl + 1));
      },
    });
  }

  async open(): Promise<void> {
    const { jsm, replicas } = this.parts;
    const config: Partial<StreamConfig> & { name: string } = {
      name: this.stream,
      subjects: [`${this.subjectPrefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      duplicate_window: DUPLICATE_WINDOW_NS,
    };
    try {
      const info = await jsm.streams.info(this.stream);
      if (info.config.num_replicas !== replicas)
        await jsm.streams.update(this.stream, { ...info.config, num_replicas: replicas });
    } catch (e) {
      if (!(e instanceof Error) || !/stream not found/i.test(e.message)) throw e;
      await jsm.streams.add(config);
    }
    await this.mirror.start();
  }

  /** Append an event; resolves once acknowledged and in this node's mirror. */
  async put(key: string, json: string): Promise<void> {
    await this.publish(key, json);
  }

  /**
   * Append only if the key is new: answered from the mirror, and across nodes by JetStream's
   * duplicate detection on the key (within its 2-minute window).
   */
  async spendOnce(key: string, json: string): Promise<boolean> {
    if (this.events.has(key)) return false;
    return this.publish(key, json, key);
  }

  close(): void {
    this.mirror.close();
  }

  /**
   * Ridden through a leader election (retry.ts). A put carries its own Nats-Msg-Id (a retry is a
   * duplicate of itself); a spend carries the key: a duplicate is another spend of the key, or,
   * after an attempt that got no answer, possibly ours: then the stored value tells.
   */
  private async publish(key: string, json: string, spendKey?: string): Promise<boolean> {
    const slash = key.indexOf('/');
    const tenant = slash < 0 ? key : key.slice(0, slash);
    const body = `${JSON.stringify(key)}\n${json}`;
    let attempts = 0;
    const ack = await guarded(
      rideOut(this.parts, (timeout) => {
        attempts++;
        return this.parts.js.publish(`${this.subjectPrefix}.${enc(tenant)}`, body, {
          msgID: spendKey ?? randomUUID(),
          timeout,
        });
      }),
    );
    if (!(await this.mirror.reached(ack.seq, APPLY_TIMEOUT_MS))) {
      throw unavailable(new Error(`${this.stream}: the write did not come back within ${APPLY_TIMEOUT_MS} ms`));
    }
    if (ack.duplicate && spendKey !== undefined) return attempts > 1 && this.events.get(key) === json;
    return true;
  }
}
