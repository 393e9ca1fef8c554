// The mesh of this host (spec §19.2), built from AMP_MESH_CONFIG: the directory route() asks, the
// outbound adapter of `mesh:<host id>` targets, the handler of peers' requests, and the
// reachability of the peers for /v1/health (their last answer, and a light probe of their
// /v1/health: every 15 s while a peer answers, every 3 s while it does not; 2 s at most each).

import { randomHex } from '../../crypto/random.js';
import type { Ed25519Verifier } from '../../crypto/verifier.js';
import type { Agents } from '../agents.js';
import type { RelayContext } from '../context.js';
import type { ForeignInbox } from '../foreign.js';
import type { PeerEntry } from '../remote.js';
import { MeshAdapter } from './adapter.js';
import { MeshClient } from './client.js';
import type { MeshConfig, MeshHost } from './config.js';
import { MeshDirectory } from './directory.js';
import { MeshInbound } from './inbound.js';

export { MESH_KIND, MESH_POLICY } from './adapter.js';
export { loadMeshConfig } from './config.js';
export type { MeshHeaders, MeshInbound } from './inbound.js';

const RESOLVE_TIMEOUT_MS = 2000;
const PROBE_TICK_MS = 3000;
const PROBE_REACHABLE_EVERY_MS = 15_000;
const PROBE_TIMEOUT_MS = 2000;

export interface MeshStatus {
  enabled: true;
  hosts_configured: number;
  hosts_reachable: number;
  self_host_id: string;
}

export class Mesh {
  readonly client: MeshClient;
  readonly directory: MeshDirectory;
  readonly adapter: MeshAdapter;
  /** Set by connect(), once the relay core exists. */
  inbound: MeshInbound | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Peer id → when it was last probed. */
  private readonly probed = new Map<string, number>();

  constructor(
    private readonly ctx: RelayContext,
    readonly config: MeshConfig,
  ) {
    this.client = new MeshClient(config, ctx.providerKey.privatePem);
    this.directory = new MeshDirectory(
      {
        selfId: config.selfId,
        hostIds: config.hosts.map((h) => h.id),
        providers: ctx.knownProviders,
        defaultTenant: ctx.config.defaultTenant,
      },
      (address) => this.resolveAtPeers(address),
    );
    this.adapter = new MeshAdapter(this.client);
  }

  /** Peers' requests can be answered from now on; the probes start. */
  connect(parts: { verifier: Ed25519Verifier; agents: Agents; foreign: ForeignInbox }): void {
    const { directory } = this;
    this.inbound = new MeshInbound(this.ctx, this.config.hosts, { ...parts, directory, selfId: this.config.selfId });
    this.probe();
    this.timer = setInterval(() => this.probe(), PROBE_TICK_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  status(): MeshStatus {
    return {
      enabled: true,
      hosts_configured: this.config.hosts.length,
      hosts_reachable: this.client.reachableCount(),
      self_host_id: this.config.selfId,
    };
  }

  /** The configured hosts for `GET /v1/peers`, with what the probes know of each. */
  peers(): PeerEntry[] {
    return this.config.hosts.map((h) => ({
      kind: 'mesh',
      id: h.id,
      url: h.url,
      target: this.directory.routeTo(h.id).target,
      reachable: () => this.client.lastAnswered(h.id),
    }));
  }

  /** Peers that did not answer last, and the others every PROBE_REACHABLE_EVERY_MS. */
  private probe(): void {
    const now = Date.now();
    for (const h of this.config.hosts) {
      const due = !this.client.isReachable(h.id) || now - (this.probed.get(h.id) ?? 0) >= PROBE_REACHABLE_EVERY_MS;
      if (!due) continue;
      this.probed.set(h.id, now);
      void this.client.probe(h, PROBE_TIMEOUT_MS);
    }
  }

  /** Every peer at once; the first that has the address wins (undefined: none, within the timeout). */
  private resolveAtPeers(address: string): Promise<string | undefined> {
    const hosts = this.config.hosts;
    return new Promise((resolve) => {
      let left = hosts.length;
      const done = (id: string | undefined) => {
        left--;
        if (id !== undefined) resolve(id);
        else if (left === 0) resolve(undefined);
      };
      for (const h of hosts) this.askPeer(h, address).then(done, () => done(undefined));
    });
  }

  private async askPeer(host: MeshHost, address: string): Promise<string | undefined> {
    const signal = AbortSignal.timeout(RESOLVE_TIMEOUT_MS);
    const r = await this.client.post(host, '/mesh/resolve', { address, nonce: randomHex(8) }, signal);
    if (r.status !== 200) {
      if (r.status !== 404) this.ctx.logger.warn({ host: host.id, status: r.status }, 'mesh resolve refused');
      return undefined;
    }
    return host.id;
  }
}
