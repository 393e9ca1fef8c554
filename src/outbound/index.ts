// The outbound delivery engine's public face (adapters and the composition root import this).

export { Breaker, type BreakerState } from './breaker.js';
export { type Clock, type ClockTimer, systemClock } from './clock.js';
export { type EnqueueInput, OutboundEngine, type OutboundEngineOptions, targetKind } from './engine.js';
export {
  type BreakerPolicy,
  DEFAULT_POLICY,
  type PolicyOverride,
  type RetryPolicy,
  retryDelay,
  type TargetPolicy,
  WEBHOOK_POLICY,
  withPolicy,
} from './policy.js';
export type { Adapter, KindStats, OutboundEvents, OutboundItem, Outcome, Refusal, TargetStats } from './types.js';
export { type AllowList, EMPTY_ALLOW_LIST, parseAllowList } from './allow-list.js';
export { type CheckedUrl, checkUrl, UrlRefusedError } from './ssrf.js';
export { fetchChecked, OutboundFailure } from './fetch-checked.js';
