// What the AID HTTP surface needs from the identity module. Registrations, tokens and the audit
// trail build on this (agent-identity §3-§11).

import { AmpError, REGISTERED_LABEL_RE, RESERVED_TENANTS } from '../../proto/index.js';
import type { DirectoryStore } from '../store/types.js';
import type { Logger } from 'pino';
import { type AdminCheck, checkAdminToken, hasScope, issuerOf } from './admin-tokens.js';
import { type ConsoleLoginCheck, checkConsoleLogin, claimedTenant } from './console-login.js';
import type { Actor } from './audit.js';
import { AidError } from './errors.js';
import { authorizationServerMetadata, openidConfiguration, protectedResourceMetadata } from './discovery.js';
import type { SigningKeys } from './signing-keys.js';
import { decodeJwt } from 'jose';

/** A signed-in console admin (src/console/ sessions): what the sign-in link granted. */
export interface AdminPrincipal {
  tenant: string;
  email: string;
  scopes: readonly string[];
}

export type DiscoveryDoc = 'oauth-authorization-server' | 'openid-configuration' | 'oauth-protected-resource';

export class IdentityRoutes {
  constructor(
    private readonly keys: SigningKeys,
    private readonly store: DirectoryStore,
    /** `AMP_PUBLIC_URL`, else the listening origin: the issuer never comes from a request. */
    private readonly publicBase: () => string,
    /** AID_ISSUER_ALIASES: other base URLs agents reach us by; proofs may name them (§16). */
    private readonly issuerAliases: readonly string[] = [],
    /** Where a refused admin token's reason goes, at debug (never the token). */
    private readonly logger?: Logger,
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
    const r = await this.checkAdmin(m[1], tenant, scope);
    if (!r.ok)
      throw new AidError(r.error, r.description, { headers: { 'WWW-Authenticate': `Bearer error="${r.error}"` } });
    return { type: 'admin', id: String(r.claims.sub), email: r.claims.email, address: null, ip, userAgent };
  }

  /**
   * Spec §20: an `amp:admin` JWT, for the tenant it names (the caller then checks the agent is of
   * that tenant). Refusals in the AMP shape: no or a bad token 401 `unauthorized`, an agent token
   * or a missing scope 403 `forbidden`.
   */
  async ampAdmin(authorization: string, scope = 'amp:admin'): Promise<{ email: string; tenant: string }> {
    const m = /^bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!m) throw new AmpError('unauthorized', 'An admin bearer token (scope amp:admin) is required');
    let tenant: unknown;
    try {
      tenant = decodeJwt(m[1]).company_url_id;
    } catch {
      tenant = undefined;
    }
    if (typeof tenant !== 'string' || !REGISTERED_LABEL_RE.test(tenant)) {
      const why = { reason: typeof tenant === 'undefined' ? 'malformed' : 'wrong_tenant', got: tenant };
      this.logger?.debug({ event: 'admin_token_refused', scope: 'amp:admin', ...why }, 'admin token refused');
      throw new AmpError('unauthorized', 'The admin token is invalid or expired');
    }
    const r = await this.checkAdmin(m[1], tenant, scope);
    if (!r.ok)
      throw new AmpError(r.status === 401 ? 'unauthorized' : 'forbidden', r.description, {
        headers: { 'WWW-Authenticate': `Bearer error="${r.error}"` },
      });
    return { email: r.claims.email, tenant };
  }

  /** §10 for a console session: the same actor as an admin JWT of its tenant with `scope` gives. */
  sessionAdmin(p: AdminPrincipal, tenant: string, scope: string, ip: string, userAgent: string): Actor {
    if (p.tenant !== tenant)
      throw new AidError('invalid_token', 'The console session is not valid for this organisation');
    if (!hasScope(p.scopes, scope)) throw new AidError('insufficient_scope', `The session lacks the ${scope} scope`);
    return { type: 'admin', id: `admin:${p.email}`, email: p.email, address: null, ip, userAgent };
  }

  /** §20 for a console session: as ampAdmin, with the session's tenant and scopes. */
  ampSessionAdmin(p: AdminPrincipal, scope: string): { email: string; tenant: string } {
    if (!hasScope(p.scopes, scope)) throw new AmpError('forbidden', `The session lacks the ${scope} scope`);
    return { email: p.email, tenant: p.tenant };
  }

  /** A console sign-in link, checked under its tenant's issuer and aliases (src/identity/console-login.ts). */
  async consoleLogin(token: string): Promise<ConsoleLoginCheck> {
    const tenant = claimedTenant(token);
    if (tenant === undefined || !REGISTERED_LABEL_RE.test(tenant))
      return {
        ok: false,
        reason: 'malformed',
        message: 'This sign-in link is malformed; run amp-relay admin login again',
      };
    const r = await checkConsoleLogin(this.keys, token, [this.issuer(tenant), ...this.proofAliases(tenant)]);
    if (!r.ok) this.logger?.debug({ event: 'console_login_refused', tenant, reason: r.reason }, 'sign-in link refused');
    return r;
  }

  /**
   * An admin token is accepted under the tenant's issuer and under each AID_ISSUER_ALIASES base
   * (all of them name this server; the signature is what proves it). A refusal says why at debug.
   */
  private async checkAdmin(token: string, tenant: string, scope: string): Promise<AdminCheck> {
    const r = await checkAdminToken(
      this.keys,
      token,
      [this.issuer(tenant), ...this.proofAliases(tenant)],
      tenant,
      scope,
    );
    if (!r.ok) this.logger?.debug({ event: 'admin_token_refused', tenant, scope, ...r.why }, 'admin token refused');
    return r;
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
