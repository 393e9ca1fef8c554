// What the AID HTTP surface needs from the identity module. Registrations, tokens and the audit
// trail build on this (agent-identity §3-§11).

import { AmpError, REGISTERED_LABEL_RE, RESERVED_TENANTS } from '../../proto/index.js';
import type { Store } from '../store/types.js';
import { issuerOf } from './admin-tokens.js';
import { authorizationServerMetadata, openidConfiguration, protectedResourceMetadata } from './discovery.js';
import type { SigningKeys } from './signing-keys.js';

export type DiscoveryDoc = 'oauth-authorization-server' | 'openid-configuration' | 'oauth-protected-resource';

export class IdentityRoutes {
  constructor(
    private readonly keys: SigningKeys,
    private readonly store: Store,
    /** `AMP_PUBLIC_URL`, else the listening origin: the issuer never comes from a request. */
    private readonly publicBase: () => string,
  ) {}

  /** A tenant exists once an AMP agent registered in it; an unknown one is 404 (§1). */
  private tenant(raw: string): string {
    const t = raw.toLowerCase();
    if (!REGISTERED_LABEL_RE.test(t) || RESERVED_TENANTS.has(t) || !this.store.hasTenant(t)) throw new AmpError('not_found', `Unknown organisation '${raw}'`);
    return t;
  }

  issuer(tenant: string): string {
    return issuerOf(this.publicBase(), tenant);
  }

  jwks(tenant?: string): Record<string, unknown> {
    if (tenant !== undefined) this.tenant(tenant);
    return this.keys.jwks();
  }

  discovery(doc: DiscoveryDoc, rawTenant: string): Record<string, unknown> {
    const t = this.tenant(rawTenant);
    const issuer = this.issuer(t);
    if (doc === 'oauth-authorization-server') return authorizationServerMetadata(issuer);
    if (doc === 'openid-configuration') return openidConfiguration(issuer, this.keys.alg);
    return protectedResourceMetadata(issuer, t);
  }
}
