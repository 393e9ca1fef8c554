// Mesh peers and federated providers in the server (src/server.ts calls this): their outbound
// adapters for the engine, and the directory route() asks where an address lives (spec §19).
// Each part is present only when configured (AMP_MESH_CONFIG, AMP_FEDERATION_PINS).

import type { Adapter, OutboundEngine, TargetPolicy } from './outbound/index.js';
import { remoteOutbox } from './outbound-wiring.js';
import type { RelayContext } from './relay/context.js';
import type { ForeignInbox } from './relay/foreign.js';
import { combineDirectories, type RemoteDirectory } from './relay/remote.js';
import type { MessageRouter } from './relay/route.js';
import { type PeerStatus, PeerTracker } from './relay/peers.js';
import type { Ed25519Verifier } from './crypto/verifier.js';
import type { Agents } from './relay/agents.js';
import { loadMeshConfig, Mesh, MESH_KIND, MESH_POLICY } from './relay/mesh/index.js';
import { type Federation, type FederationDeps, openFederation } from './relay/federation/index.js';

export interface RemoteParts {
  /** Outbound adapters by target kind (`mesh`, `federation`), and their policies when not the default. */
  adapters: Record<string, Adapter>;
  policies: Record<string, TargetPolicy>;
  directory: RemoteDirectory | undefined;
  /** §19.2, when AMP_MESH_CONFIG is set. */
  mesh?: Mesh;
  /** §19.1, when AMP_FEDERATION_PINS is set and the mode is not `closed`. */
  federation?: Federation;
}

/** What federation's inbound side checks with: the verifier, the revocation list, the agents, the foreign inbox. */
export interface RemoteDeps {
  verifier: FederationDeps['verifier'];
  store: FederationDeps['store'];
  relay: { foreign: ForeignInbox; agents: Pick<Agents, 'findByAddress'> };
}

/** Reads the mesh and federation configuration; built before the outbound engine. */
export function buildRemote(ctx: RelayContext, deps: RemoteDeps): RemoteParts {
  const mesh = ctx.config.meshConfig ? new Mesh(ctx, loadMeshConfig(ctx.config.meshConfig)) : undefined;
  const { verifier, store, relay } = deps;
  const findAgent = (address: string) => relay.agents.findByAddress(address);
  const federation = openFederation(ctx, { verifier, store, foreign: relay.foreign, findAgent });
  const adapters: Record<string, Adapter> = {};
  const policies: Record<string, TargetPolicy> = {};
  if (mesh) {
    adapters[MESH_KIND] = mesh.adapter;
    policies[MESH_KIND] = MESH_POLICY;
  }
  if (federation) {
    adapters.federation = federation.adapter;
    policies.federation = federation.policy;
  }
  const directory = combineDirectories([mesh?.directory, federation?.directory]);
  return { adapters, policies, directory, mesh, federation };
}

/** The inbound sides the REST surface serves (mesh peers' requests, other providers' deliveries). */
export function remoteInbound(parts: RemoteParts) {
  return { mesh: parts.mesh?.inbound, federation: parts.federation?.inbound };
}

/**
 * Once the engine exists: route() may send to remote addresses, foreign messages resolve mesh
 * addresses, and the peers' reachability is followed. Returns the `GET /v1/peers` document.
 */
export function connectRemote(
  parts: RemoteParts,
  engine: OutboundEngine,
  relay: { router: MessageRouter; foreign: ForeignInbox; agents: Agents },
  verifier: Ed25519Verifier,
): () => PeersDoc {
  parts.mesh?.connect({ verifier, agents: relay.agents, foreign: relay.foreign });
  const { directory } = parts;
  if (directory) {
    relay.router.useRemote({ directory, outbox: remoteOutbox(engine) });
    relay.foreign.useDirectory(directory);
  }
  const tracker = new PeerTracker();
  tracker.watch(engine);
  return () => {
    const doc: PeersDoc = { mesh: [], federation: [] };
    for (const entry of [...(parts.mesh?.peers() ?? []), ...(parts.federation?.peers() ?? [])]) {
      doc[entry.kind].push(tracker.status(entry, engine.targetStat(entry.target)));
    }
    return doc;
  };
}

/** `GET /v1/peers`: each configured mesh host and pinned provider, reachable or not, and its queue. */
export interface PeersDoc {
  mesh: PeerStatus[];
  federation: PeerStatus[];
}
