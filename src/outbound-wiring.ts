// The outbound delivery engine in the server (src/server.ts calls this): one engine over the
// store's outbound queues, with the webhook adapter (§18), its metrics and its store errors logged.
// Mesh and federation adapters join here as they are built.

import type { Logger } from 'pino';
import { OutboundEngine, type PolicyOverride, WEBHOOK_POLICY, withPolicy } from './outbound/index.js';
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
): OutboundEngine {
  const engine = new OutboundEngine({
    store,
    adapters: { [WEBHOOK_KIND]: webhooks },
    policies: { [WEBHOOK_KIND]: withPolicy(WEBHOOK_POLICY, opts.webhookPolicy) },
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
