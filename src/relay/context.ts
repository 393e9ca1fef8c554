// What every part of the relay core shares: configuration, logging, rate limits, the provider key.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { tlsEnabled } from '../config/tls.js';
import type { ProviderKey } from '../crypto/provider-key.js';
import type { AgentRecord } from '../store/types.js';
import type { RelayObserver } from './observer.js';
import type { RateLimits } from './ratelimit.js';

export interface RelayContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly limits: RateLimits;
  readonly providerKey: ProviderKey;
  /** Our domain first, then its aliases. */
  readonly knownProviders: readonly string[];
  readonly startedAt: number;
  /** Message counters and debug lines (routed, pushed, acked). */
  readonly observer: RelayObserver;
}

/** AMP agent changes that AID registrations bound to the agent follow (agent-identity §13). */
export interface AmpLifecycleHooks {
  /** After the agent was deregistered and its record removed. */
  followAmpDeregistration(agent: AgentRecord): Promise<void>;
  /** Is the key already an identity of something else in the agent's tenant? (checked before rotating to it) */
  keyClaimedByOther(agent: AgentRecord, fingerprint: string): boolean;
  /** After a keypair rotation committed. */
  followAmpKeyRotation(before: AgentRecord, after: AgentRecord): Promise<void>;
}

export interface ProviderUrls {
  /** `<base>/api/v1` */
  endpoint: string;
  route_url: string;
}

/**
 * Absolute URLs come from AMP_PUBLIC_URL, else from the request's scheme and Host when the Host is
 * well formed. `host` and `forwardedProto` are what transport/http/forwarded.ts kept: X-Forwarded-*
 * only from AMP_TRUSTED_PROXIES. They carry no security weight.
 */
export function providerUrls(config: Config, host: string, forwardedProto: string): ProviderUrls {
  let base = config.publicUrl.replace(/\/+$/, '');
  if (!base) {
    const validHost = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host)
      ? host
      : `localhost:${config.port}`;
    // A trusted proxy's X-Forwarded-Proto wins; without one, the scheme this server listens with.
    const listening = tlsEnabled(config) ? 'https' : 'http';
    const scheme = forwardedProto === 'https' || forwardedProto === 'http' ? forwardedProto : listening;
    base = `${scheme}://${validHost}`;
  }
  const endpoint = `${base}/api/v1`;
  return { endpoint, route_url: `${endpoint}/route` };
}
