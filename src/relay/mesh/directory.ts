// Where an own-domain address lives in the mesh (spec §19.2, §4):
// - `name@<host id>.<domain>` (the short form `name@<host id>` expands to it): on that peer. In
//   our registry the rightmost scope label is the tenant, so a configured host id used as a tenant
//   name here is shadowed by the peer: give hosts ids that are not tenant names.
// - `name@<self id>.<domain>` is the agent `name` of this host's default tenant (AMP_DEFAULT_TENANT):
//   `localize` rewrites it (extra scope labels are kept: `bob@repo.plat.<self id>.<domain>`).
// - an org address unknown here (`bob@acme.<domain>`): `lookup` asks every peer at once
//   (POST /v1/mesh/resolve) and takes the first that has it; answers are cached (found 5 min,
//   not found 30 s). `name@<self id>.<domain>` unknown here is never asked of the peers (404).
// - a provider alias (AMP_PROVIDER_ALIASES) names the same agents: `localize` writes an address
//   with our main domain, so `bob@acme.<alias>` is `bob@acme.<domain>` everywhere.
// - a peer speaks for its own agents only (`sender`): `from` must be `name@<its id>.<domain>` or
//   an org address (its tenant not a host id, ours included), never another provider's agent.

import type { RemoteDirectory, RemoteRoute } from '../remote.js';

const HIT_TTL_MS = 5 * 60_000;
const MISS_TTL_MS = 30_000;
/** How long a mesh route answer waits for the peer to take the message (a LAN peer is quick). */
export const MESH_WAIT_MS = 3000;
const MAX_CACHED = 10_000;

export interface MeshNames {
  selfId: string;
  hostIds: readonly string[];
  /** Our domain first, then its aliases. */
  providers: readonly string[];
  defaultTenant: string;
}

/**
 * Asks the peers whether they have an agent at `address`: the id of the first that does; undefined
 * when every peer answered 404; null when none has it but some did not answer for sure (down,
 * 401, 5xx): that miss is not cached.
 */
export type PeerResolver = (address: string) => Promise<string | undefined | null>;

export class MeshDirectory implements RemoteDirectory {
  private readonly hosts: Set<string>;
  private readonly cache = new Map<string, { host: string | undefined; until: number }>();
  private readonly asking = new Map<string, Promise<string | undefined | null>>();

  constructor(
    private readonly names: MeshNames,
    private readonly resolve: PeerResolver,
  ) {
    this.hosts = new Set(names.hostIds);
  }

  /** The peer route of a host id. */
  routeTo(host: string): RemoteRoute {
    return { kind: 'mesh', target: `mesh:${host}`, remoteHost: host, waitMs: MESH_WAIT_MS };
  }

  route(address: string, provider: string): RemoteRoute | undefined {
    if (!this.names.providers.includes(provider)) return undefined;
    const tenant = tenantLabel(address, provider);
    return tenant !== undefined && this.hosts.has(tenant) ? this.routeTo(tenant) : undefined;
  }

  localize(raw: string): string | undefined {
    const address = this.expand(raw.toLowerCase());
    const provider = address && this.providerOf(address);
    if (!address || !provider) return undefined;
    const tenant = tenantLabel(address, provider);
    const domain = this.names.providers[0]!;
    let head = address.slice(0, address.length - provider.length);
    if (tenant === this.names.selfId)
      head = `${head.slice(0, head.length - 1 - tenant.length)}${this.names.defaultTenant}.`;
    const out = `${head}${domain}`;
    return out === raw ? undefined : out;
  }

  /** Whether the address names this host (`name@<self id>`, any provider spelling). */
  ownHost(raw: string): boolean {
    const address = this.expand(raw.toLowerCase());
    const provider = address && this.providerOf(address);
    return !!provider && tenantLabel(address, provider) === this.names.selfId;
  }

  /**
   * Why peer `peer` may not send as `from` (undefined: it may, if `from` is not registered here,
   * which the caller checks): an address of another provider, of this host or of another host.
   */
  senderProblem(from: string, peer: string): string | undefined {
    const address = this.expand(from.toLowerCase());
    const provider = address && this.providerOf(address);
    if (!provider) return 'A mesh peer speaks for agents of this provider only, not of another provider';
    const tenant = tenantLabel(address, provider);
    if (tenant === undefined) return 'from must name a tenant or a host (name@tenant.<domain>)';
    if (tenant === peer) return undefined;
    if (tenant === this.names.selfId) return 'A mesh peer cannot send as an agent registered on this host';
    if (this.hosts.has(tenant)) return `A mesh peer cannot send as an agent of another mesh host ('${tenant}')`;
    return undefined;
  }

  /**
   * For an org `from` (`name@tenant.<domain>`, tenant not a host id) that a peer forwards: the other
   * host that has that agent (asked of the peers, cached), or undefined when none but the sender
   * does. A peer may speak for its own org agents only.
   */
  async orgSenderElsewhere(from: string, peer: string): Promise<string | undefined> {
    const address = this.expand(from.toLowerCase());
    const provider = address && this.providerOf(address);
    const tenant = provider && tenantLabel(address, provider);
    if (!address || tenant === undefined || tenant === peer || this.hosts.has(tenant)) return undefined;
    const found = await this.lookupHost(address);
    return found?.remoteHost !== undefined && found.remoteHost !== peer ? found.remoteHost : undefined;
  }

  /** The tenant an own-domain address names (after localize), or undefined. */
  tenantOf(raw: string): string | undefined {
    const address = this.localize(raw) ?? raw.toLowerCase();
    const provider = this.providerOf(address);
    return provider && tenantLabel(address, provider);
  }

  async lookup(address: string): Promise<RemoteRoute | undefined> {
    const route = await this.lookupHost(address);
    if (!route) return undefined;
    const provider = this.providerOf(address);
    const tenant = provider && tenantLabel(address, provider);
    return tenant ? { ...route, tenant } : route;
  }

  private async lookupHost(address: string): Promise<RemoteRoute | undefined> {
    const now = Date.now();
    const hit = this.cache.get(address);
    if (hit && hit.until > now) return hit.host === undefined ? undefined : this.routeTo(hit.host);
    let asking = this.asking.get(address);
    if (!asking) {
      asking = this.resolve(address).finally(() => this.asking.delete(address));
      this.asking.set(address, asking);
    }
    const host = await asking;
    if (host === null) return undefined;
    this.remember(address, host, now);
    return host === undefined ? undefined : this.routeTo(host);
  }

  private remember(address: string, host: string | undefined, now: number): void {
    if (this.cache.size >= MAX_CACHED) {
      for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
    }
    this.cache.delete(address);
    this.cache.set(address, { host, until: now + (host === undefined ? MISS_TTL_MS : HIT_TTL_MS) });
  }

  /** `name@x` → `name@x.<domain>`; a full address as it is; undefined for anything else. */
  private expand(address: string): string | undefined {
    const at = address.indexOf('@');
    if (at <= 0) return undefined;
    return address.includes('.', at) ? address : `${address}.${this.names.providers[0]}`;
  }

  /** The longest known provider the address ends with. */
  private providerOf(address: string): string | undefined {
    let best: string | undefined;
    for (const p of this.names.providers)
      if (address.endsWith(`.${p}`) && address.indexOf('@') < address.length - p.length - 1)
        if (best === undefined || p.length > best.length) best = p;
    return best;
  }
}

/** The rightmost scope label of `name@…<tenant>.<provider>`, or undefined when there is none. */
function tenantLabel(address: string, provider: string): string | undefined {
  const at = address.indexOf('@');
  const end = address.length - provider.length - 1;
  if (end <= at + 1 || address[end] !== '.') return undefined;
  const scope = address.slice(at + 1, end);
  return scope.slice(scope.lastIndexOf('.') + 1);
}
