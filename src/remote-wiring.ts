// Mesh peers and federated providers in the server (src/server.ts calls this): their outbound
// adapters for the engine, and the directory route() asks where an address lives (spec §19).
// Each part is present only when configured (AMP_MESH_CONFIG, AMP_FEDERATION_PINS).

import type { Adapter, OutboundEngine, TargetPolicy } from './outbound/index.js';
import { remoteOutbox } from './outbound-wiring.js';
import type { RelayContext } from './relay/context.js';
import type { Agents } from './relay/agents.js';
import type { ForeignInbox } from './relay/foreign.js';
import { combineDirectories, type RemoteDirectory } from './relay/remote.js';
import type { MessageRouter } from './relay/route.js';
import { type Federation, type FederationDeps, openFederation } from './relay/federation/index.js';

export interface RemoteParts {
  /** Outbound adapters by target kind (`mesh`, `federation`), and their policies when not the default. */
  adapters: Record<string, Adapter>;
  policies: Record<string, TargetPolicy>;
  directory: RemoteDirectory | undefined;
  /** §19.1, when AMP_FEDERATION_PINS is set and the mode is not `closed`. */
  federation?: Federation;
}

/** What the inbound sides check with: the verifier, the revocation list, the agents, the foreign inbox. */
export interface RemoteDeps {
  verifier: FederationDeps['verifier'];
  store: FederationDeps['store'];
  relay: { foreign: ForeignInbox; agents: Pick<Agents, 'findByAddress'> };
}

/** Reads the mesh and federation configuration; built before the outbound engine. */
export function buildRemote(ctx: RelayContext, parts: RemoteDeps): RemoteParts {
  const { verifier, store, relay } = parts;
  const findAgent = (address: string) => relay.agents.findByAddress(address);
  const federation = openFederation(ctx, { verifier, store, foreign: relay.foreign, findAgent });
  const directory = combineDirectories([federation?.directory]);
  const adapters: Record<string, Adapter> = {};
  const policies: Record<string, TargetPolicy> = {};
  if (federation) {
    adapters.federation = federation.adapter;
    policies.federation = federation.policy;
  }
  return { adapters, policies, directory, federation };
}

/** Once the engine exists: route() may send to remote addresses, and foreign messages resolve mesh addresses. */
export function connectRemote(
  parts: RemoteParts,
  engine: OutboundEngine,
  relay: { router: MessageRouter; foreign: ForeignInbox },
): void {
  if (!parts.directory) return;
  relay.router.useRemote({ directory: parts.directory, outbox: remoteOutbox(engine) });
  relay.foreign.useDirectory(parts.directory);
}
