// The outbound delivery engine in the server (src/server.ts calls this): one engine over the
// store's outbound queues, with the webhook adapter (§18), its metrics and its store errors logged.
// Mesh and federation adapters join here as they are built.

import type { Logger } from 'pino';
import {
  type Adapter,
  OutboundEngine,
  type OutboundItem,
  type TargetPolicy,
  type PolicyOverride,
  WEBHOOK_POLICY,
  withPolicy,
} from './outbound/index.js';
import type { FirstAttempt, RemoteOutbox } from './relay/remote.js';
import { registerOutboundMetrics } from './ops/outbound-metrics.js';
import { WEBHOOK_KIND, type Webhooks } from './relay/webhooks.js';
import type { Store } from './store/types.js';

export interface OutboundOptions {
  /**
   * Test only: replaces parts of the webhook retry policy (e.g. 50 ms retries instead of 30 s and
   * 2 min), so a test sees a retry without waiting. Production uses WEBHOOK_POLICY as the spec says.
   */
  webhookPolicy?: PolicyOverride;
}

/** Built once the store is open; start() before listening, close() before the store closes. */
export function buildOutbound(
  store: Store,
  webhooks: Webhooks,
  parts: { registry: Parameters<typeof registerOutboundMetrics>[0]; logger: Logger },
  opts: OutboundOptions = {},
  /** More kinds of target (mesh, federation): their adapters and, when not the default, policies. */
  more: { adapters: Record<string, Adapter>; policies?: Record<string, TargetPolicy> } = { adapters: {} },
): OutboundEngine {
  const engine = new OutboundEngine({
    store,
    adapters: { ...more.adapters, [WEBHOOK_KIND]: webhooks },
    policies: { ...more.policies, [WEBHOOK_KIND]: withPolicy(WEBHOOK_POLICY, opts.webhookPolicy) },
  });
  webhooks.attach(engine);
  registerOutboundMetrics(parts.registry, engine);
  engine.on('storeError', (target, err) => parts.logger.warn({ target, err }, 'outbound store write failed'));
  engine.on('delivered', (item, ms) =>
    parts.logger.debug({ target: item.target, id: item.id, ms }, 'outbound delivered'),
  );
  engine.on('retry', (item, reason, nextAt) =>
    parts.logger.info({ target: item.target, id: item.id, reason, nextAt }, 'outbound retry'),
  );
  engine.on('obsolete', (item) => parts.logger.debug({ target: item.target, id: item.id }, 'outbound obsolete'));
  engine.on('parked', (item, reason) =>
    parts.logger.info({ target: item.target, id: item.id, reason }, 'outbound parked'),
  );
  return engine;
}

/** route()'s door to the engine for mesh and federation items (src/relay/remote.ts). */
export function remoteOutbox(engine: OutboundEngine): RemoteOutbox {
  const waiting = new Map<string, (first: FirstAttempt) => void>();
  const settle = (item: OutboundItem, first: FirstAttempt) => waiting.get(`${item.target}\n${item.id}`)?.(first);
  const PENDING: FirstAttempt = { outcome: 'pending' };
  engine.on('delivered', (item) => settle(item, { outcome: 'delivered' }));
  engine.on('retry', (item) => settle(item, PENDING));
  engine.on('expired', (item) => settle(item, PENDING));
  engine.on('parked', (item, _reason, refusal) => settle(item, refusal ? { outcome: 'refused', ...refusal } : PENDING));
  return {
    enqueue: (target, item) => engine.enqueue(target, item),
    cancel: (target, id) => engine.cancel(target, id),
    firstAttempt: (target, id, ms) =>
      new Promise<FirstAttempt>((resolve) => {
        const key = `${target}\n${id}`;
        const done = (first: FirstAttempt) => {
          clearTimeout(timer);
          if (waiting.get(key) === done) waiting.delete(key);
          resolve(first);
        };
        const timer = setTimeout(done, ms, PENDING);
        waiting.set(key, done);
      }),
  };
}
