// Messages that leave or enter this provider (spec §19): the one interface between route() and
// the mesh and federation adapters. route() asks where an address lives; a remote one is built
// and signed-checked like any message, then handed to the outbound engine as an item whose body
// is an OutboundMessage. Mesh and federation turn that body into their own request at each attempt.

import type { Envelope } from '../../proto/index.js';

/** Where a message for a remote address goes. */
export interface RemoteRoute {
  kind: 'mesh' | 'federation';
  /** The outbound engine's target id, e.g. `mesh:server-01` or `federation:b.example`. */
  target: string;
  /** Mesh: the peer's host id, named as `remote_host` in the answer. */
  remoteHost?: string;
  /**
   * How long the route answer may wait for the first attempt (mesh: a LAN peer answers quickly,
   * and a success answers `delivered`/`mesh`); 0 answers `queued`/`relay` at once (federation).
   */
  waitMs: number;
}

/** What route() asks of the mesh and federation configuration. */
export interface RemoteDirectory {
  /**
   * An expanded address (lowercase, `name@scope.provider`) and its provider part: where it goes
   * when it is not ours, or undefined to resolve it here (which answers `external_provider` or
   * `not_found`). Throws an AmpError to refuse (e.g. a provider this one will not federate with).
   */
  route(address: string, provider: string): RemoteRoute | undefined;
  /** An own-domain address unknown here: asks the mesh peers (cached). Undefined: no peer has it. */
  lookup(address: string): Promise<RemoteRoute | undefined>;
  /**
   * The address this provider knows an agent by, for an address another host wrote, e.g.
   * `bob@<self host id>.<domain>` → the agent's own address. Undefined: leave it as it is.
   */
  localize(address: string): string | undefined;
}

/** The body of an outbound item for a mesh peer or a federated provider. */
export interface OutboundMessage {
  envelope: Envelope;
  payload: Record<string, unknown>;
  /** The sender's Ed25519 public key (PEM) when the message is signed, else "". */
  sender_public_key: string;
}

/** A message another host or provider delivers here, once that host or provider is authenticated. */
export interface ForeignMessage {
  /** As the sender's provider built it: `id`, `from`, `timestamp` and `signature` are kept. */
  envelope: Envelope;
  payload: Record<string, unknown>;
  /** 64 lowercase hex of the sender's key when the signature verified, else "". */
  senderKeyHex: string;
  signatureVerified: boolean;
  /**
   * Who delivered it: `mesh:<host id>` or `federation:<domain>`. Repeated ids are remembered per
   * source: the same content again is a duplicate, other content is `replay_detected`.
   */
  source: string;
}

/** What acceptForeign answers. */
export interface ForeignOutcome {
  id: string;
  status: 'delivered' | 'queued';
  method: 'websocket' | 'relay';
  /** The first answer again, for a repeated id with the same content. */
  duplicate: boolean;
}

export type FirstAttempt =
  | { outcome: 'delivered' }
  | { outcome: 'pending' }
  | { outcome: 'refused'; status: number; body: unknown };

/** What route() needs of the outbound engine for remote messages. */
export interface RemoteOutbox {
  /** Resolves once the item is durable (a 2xx may then be answered). */
  enqueue(target: string, item: { id: string; body: string; expiresAt: number }): Promise<unknown>;
  /**
   * Called before enqueue(), in the same turn: how the first attempt ended within `ms`:
   * `delivered`, `refused` (the target's answer parked it; it is still queued, parked), or
   * `pending` (it failed and will be retried, or the time ran out).
   */
  firstAttempt(target: string, id: string, ms: number): Promise<FirstAttempt>;
  /** Drops an item (a refused one the sender is told about instead). */
  cancel(target: string, id: string): Promise<boolean>;
}

export interface RemoteRouting {
  directory: RemoteDirectory;
  outbox: RemoteOutbox;
}

/** Mesh first (own-domain addresses on peers), then federation (other providers). */
export function combineDirectories(parts: ReadonlyArray<RemoteDirectory | undefined>): RemoteDirectory | undefined {
  const list = parts.filter((p): p is RemoteDirectory => p !== undefined);
  if (list.length === 0) return undefined;
  return {
    route(address, provider) {
      for (const d of list) {
        const r = d.route(address, provider);
        if (r) return r;
      }
      return undefined;
    },
    async lookup(address) {
      for (const d of list) {
        const r = await d.lookup(address);
        if (r) return r;
      }
      return undefined;
    },
    localize(address) {
      for (const d of list) {
        const a = d.localize(address);
        if (a) return a;
      }
      return undefined;
    },
  };
}

/** A configured mesh host or federated provider, as `GET /v1/peers` lists it. */
export interface PeerEntry {
  kind: 'mesh' | 'federation';
  /** The mesh host id or the provider domain. */
  id: string;
  /** Where we reach it (a base URL), or "" until discovered. */
  url: string;
  /** Its outbound target id. */
  target: string;
  /** What the part knows itself of the peer's reachability (mesh probes), else undefined. */
  reachable?: () => boolean | undefined;
}
