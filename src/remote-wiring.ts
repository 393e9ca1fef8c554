// Mesh peers and federated providers in the server (src/server.ts calls this): their outbound
// adapters for the engine, and the directory route() asks where an address lives (spec §19).
// Each part is present only when configured (AMP_MESH_CONFIG, AMP_FEDERATION_PINS).

import type { Adapter, OutboundEngine, TargetPolicy } from './outbound/index.js';
import { remoteOutbox } from './outbound-wiring.js';
import type { RelayContext } from './relay/context.js';
import type { ForeignInbox } from './relay/foreign.js';
import { combineDirectories, type RemoteDirectory } from './relay/remote.js';
import type { MessageRouter } from './relay/route.js';
import type { Ed25519Verifier } from './crypto/verifier.js';
import type { Agents } from './relay/agents.js';
import { loadMeshConfig, Mesh, MESH_KIND, MESH_POLICY } from './relay/mesh/index.js';

export interface RemoteParts {
  /** Outbound adapters by target kind (`mesh`, `federation`), and their policies when not the default. */
  adapters: Record<string, Adapter>;
  policies: Record<string, TargetPolicy>;
  directory: RemoteDirectory | undefined;
  /** §19.2, when AMP_MESH_CONFIG is set. */
  mesh?: Mesh;
}

/** Reads the mesh and federation configuration; built before the outbound engine. */
export function buildRemote(ctx: RelayContext): RemoteParts {
  const mesh = ctx.config.meshConfig ? new Mesh(ctx, loadMeshConfig(ctx.config.meshConfig)) : undefined;
  const adapters: Record<string, Adapter> = {};
  const policies: Record<string, TargetPolicy> = {};
  if (mesh) {
    adapters[MESH_KIND] = mesh.adapter;
    policies[MESH_KIND] = MESH_POLICY;
  }
  const directory = combineDirectories([mesh?.directory]);
  return { adapters, policies, directory, mesh };
}

/** Once the engine exists: route() may send to remote addresses, and foreign messages resolve mesh addresses. */
export function connectRemote(
  parts: RemoteParts,
  engine: OutboundEngine,
  relay: { router: MessageRouter; foreign: ForeignInbox; agents: Agents },
  verifier: Ed25519Verifier,
): void {
  parts.mesh?.connect({ verifier, agents: relay.agents, foreign: relay.foreign });
  if (!parts.directory) return;
  relay.router.useRemote({ directory: parts.directory, outbox: remoteOutbox(engine) });
  relay.foreign.useDirectory(parts.directory);
}
