// Following a stream in order: one ordered consumer (it recreates itself after a gap or a
// reconnect, resuming after the last message it handed over) and a callback per message.
// `ready` resolves once every message the stream held when the consumer started has been handed
// to the callback: at once when a message says nothing is pending after it, else by asking the
// consumer (nothing pending on the server, nothing delivered that was not handed over), which
// also covers a stream whose messages were all deleted meanwhile.

import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg, OrderedConsumerOptions } from '@nats-io/jetstream';

/** How often `ready` asks the consumer while the first load runs. */
const READY_POLL_MS = 50;

export interface Follower {
  ready: Promise<void>;
  /** Stream seq of the last message handed to the callback (0 if none yet). */
  readonly lastSeq: number;
  stop(): void;
}

export async function follow(
  js: JetStreamClient,
  stream: string,
  opts: Partial<OrderedConsumerOptions>,
  onMessage: (m: JsMsg) => void,
): Promise<Follower> {
  const consumer: Consumer = await js.consumers.get(stream, opts);
  // Before the first message: what the consumer reports as delivered when it has delivered nothing.
  let lastSeq = Math.max(0, (opts.opt_start_seq ?? 1) - 1);
  let isReady = false;
  let stopped = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = () => {
      if (isReady) return;
      isReady = true;
      resolve();
    };
  });
  const messages: ConsumerMessages = await consumer.consume({
    callback: (m) => {
      lastSeq = m.seq;
      onMessage(m);
      if (m.info.pending === 0) markReady();
    },
  });
  void (async () => {
    while (!isReady && !stopped) {
      try {
        const ci = await consumer.info();
        if (ci.num_pending === 0 && ci.delivered.stream_seq <= lastSeq) markReady();
      } catch {
        // Not reachable now: asked again.
      }
      if (!isReady) await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
  })();
  return {
    ready,
    get lastSeq() {
      return lastSeq;
    },
    stop() {
      stopped = true;
      messages.stop();
    },
  };
}
