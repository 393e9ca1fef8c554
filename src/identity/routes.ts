// What the AID HTTP surface needs from the identity module. Registrations, tokens and the audit
// trail build on this (agent-identity §3-§11).

import { AmpError, REGISTERED_LABEL_RE, RESERVED_TENANTS } from '../../proto/index.js';
import type { DirectoryStore } from '../store/types.js';
import { checkAdminToken, issuerOf } from './admin-tokens.js';
import type { Actor } from './audit.js';
import { AidError } from './errors.js';
import { authorizationServerMetadata, openidConfiguration, protectedResourceMetadata } from './discovery.js';
import type { SigningKeys } from './signing-keys.js';

export type DiscoveryDoc = 'oauth-authorization-server' | 'openid-configuration' | 'oauth-protected-resource';

export class IdentityRoutes {
  constructor(
    private readonly keys: SigningKeys,
    private readonly store: DirectoryStore,
    /** `AMP_PUBLIC_URL`, else the listening origin: the issuer never comes from a request. */
    private readonly publicBase: () => string,
    /** AID_ISSUER_ALIASES: other base URLs agents reach us by; proofs may name them (§16). */
    private readonly issuerAliases: readonly string[] = [],
  ) {}

  /** A tenant exists once an AMP agent registered in it; an unknown one is 404 (§1). */
  tenant(raw: string): string {
    const t = raw.toLowerCase();
    if (!REGISTERED_LABEL_RE.test(t) || RESERVED_TENANTS.has(t) || !this.store.hasTenant(t))
      throw new AmpError('not_found', `Unknown organisation '${raw}'`);
    return t;
  }

  issuer(tenant: string): string {
    return issuerOf(this.publicBase(), tenant);
  }

  /** The tenant's issuer under each alias base URL (tokens are always issued by `issuer`). */
  proofAliases(tenant: string): string[] {
    return this.issuerAliases.map((base) => issuerOf(base.replace(/\/+$/, ''), tenant));
  }

  /** §10: an admin JWT of this tenant with `scope`; the actor for the audit trail. */
  async admin(authorization: string, tenant: string, scope: string, ip: string, userAgent: string): Promise<Actor> {
    const m = /^bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!m)
      throw new AidError('invalid_token', 'An admin bearer token is required', {
        headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
      });
    const r = await checkAdminToken(this.keys, m[1], this.issuer(tenant), tenant, scope);
    if (!r.ok)
      throw new AidError(r.error, r.description, { headers: { 'WWW-Authenticate': `Bearer error="${r.error}"` } });
    return { type: 'admin', id: String(r.claims.sub), email: r.claims.email, address: null, ip, userAgent };
  }

  async jwks(tenant?: string): Promise<Record<string, unknown>> {
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
