// Where an own-domain address lives in the mesh (spec §19.2, §4):
// - `name@<host id>.<domain>` (the short form `name@<host id>` expands to it): on that peer. In
//   our registry the rightmost scope label is the tenant, so a configured host id used as a tenant
//   name here is shadowed by the peer: give hosts ids that are not tenant names.
// - `name@<self id>.<domain>` is the agent `name` of this host's default tenant (AMP_DEFAULT_TENANT):
//   `localize` rewrites it (extra scope labels are kept: `bob@repo.plat.<self id>.<domain>`).
// - an org address unknown here (`bob@acme.<domain>`): `lookup` asks every peer at once
//   (POST /v1/mesh/resolve) and takes the first that has it; answers are cached (found 5 min,
//   not found 30 s).

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

/** Asks the peers whether they have an agent at `address`: the id of the first that does. */
export type PeerResolver = (address: string) => Promise<string | undefined>;

export class MeshDirectory implements RemoteDirectory {
  private readonly hosts: Set<string>;
  private readonly cache = new Map<string, { host: string | undefined; until: number }>();
  private readonly asking = new Map<string, Promise<string | undefined>>();

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
    let out = address;
    if (tenant === this.names.selfId) {
      const head = address.slice(0, address.length - provider.length - 1 - tenant.length);
      out = `${head}${this.names.defaultTenant}.${provider}`;
    }
    return out === raw ? undefined : out;
  }

  async lookup(address: string): Promise<RemoteRoute | undefined> {
    const now = Date.now();
    const hit = this.cache.get(address);
    if (hit && hit.until > now) return hit.host === undefined ? undefined : this.routeTo(hit.host);
    let asking = this.asking.get(address);
    if (!asking) {
      asking = this.resolve(address).finally(() => this.asking.delete(address));
      this.asking.set(address, asking);
    }
    const host = await asking;
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
