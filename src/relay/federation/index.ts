// Federation with other providers (spec §19.1), when AMP_FEDERATION_PINS is set and
// AMP_FEDERATION_MODE is not `closed`: the outbound adapter for `federation:<domain>` targets, the
// directory that sends addresses of other providers there, and the inbound side (deliveries and
// key lookups from other providers). `closed` turns federation off both ways (the pins are still
// checked at start).

import { AmpError, parseAddress } from '../../../proto/index.js';
import { providerSigner } from '../../crypto/federation-keys.js';
import type { Ed25519Verifier } from '../../crypto/verifier.js';
import { type Adapter, parseAllowList, type TargetPolicy } from '../../outbound/index.js';
import type { AgentRecord, DirectoryStore } from '../../store/types.js';
import type { RelayContext } from '../context.js';
import type { ForeignInbox } from '../foreign.js';
import type { PeerEntry, RemoteDirectory } from '../remote.js';
import { FEDERATION_POLICY, federationAdapter } from './adapter.js';
import { HomeKeys } from './home-keys.js';
import { FederationInbound } from './inbound.js';
import { DOMAIN_RE, federationEnabled, readPinsFile } from './pins.js';
import { Providers } from './providers.js';
import type { RequestSigner } from './signed-request.js';

export { FederationInbound, type ProviderHeaders } from './inbound.js';
export type { HomeKey } from './home-keys.js';
export { FEDERATION_POLICY } from './adapter.js';
export { federationEnabled } from './pins.js';

export interface FederationDeps {
  verifier: Ed25519Verifier;
  store: Pick<DirectoryStore, 'findRevokedKey'>;
  foreign: Pick<ForeignInbox, 'accept'>;
  findAgent: (address: string) => AgentRecord | undefined;
}

export interface Federation {
  adapter: Adapter;
  policy: TargetPolicy;
  directory: RemoteDirectory;
  inbound: FederationInbound;
  providers: Providers;
  /** The pinned providers, for `GET /v1/peers` (their reachability is the engine's last contact). */
  peers(): PeerEntry[];
}

export function openFederation(ctx: RelayContext, deps: FederationDeps): Federation | undefined {
  const { config } = ctx;
  if (!federationEnabled(config)) return undefined;
  const allowHttp = parseAllowList(config.federationAllowHttp, 'AMP_FEDERATION_ALLOW_HTTP').allow;
  // Checked by the configuration already; read again here (a file changed since is read as it is now).
  const { pins, problems } = readPinsFile(config.federationPins, 'AMP_FEDERATION_PINS', allowHttp);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const providers = new Providers({ pins, allowHttp });
  const signer: RequestSigner = { domain: config.providerDomain, sign: providerSigner(ctx.providerKey), allowHttp };
  const allowed = new Set([...providers.pinnedDomains(), ...config.federationAllow.map((d) => d.toLowerCase())]);
  const trusts = (domain: string) => config.federationMode === 'open' || allowed.has(domain);
  const inbound = new FederationInbound({ ctx, ...deps, providers, homeKeys: new HomeKeys(signer), trusts });
  return {
    adapter: federationAdapter(providers, signer, ctx.logger),
    policy: FEDERATION_POLICY,
    directory: federationDirectory(ctx, providers, trusts),
    inbound,
    providers,
    peers: () =>
      pins.map((p) => ({ kind: 'federation', id: p.domain, url: p.endpoint, target: `federation:${p.domain}` })),
  };
}

/**
 * Addresses of other providers go to `federation:<provider>` (answered queued/relay at once). In
 * allowlist mode only to the providers that may deliver here too (their answers could not come back).
 */
function federationDirectory(
  ctx: RelayContext,
  providers: Providers,
  trusts: (domain: string) => boolean,
): RemoteDirectory {
  const pinned = providers.pinnedDomains();
  return {
    route(address, provider) {
      if (ctx.knownProviders.includes(provider)) return undefined;
      // A pinned provider of more than two labels (amp.b.example) is named by its pin.
      const domain = parseAddress(address, pinned).provider ?? provider;
      if (!DOMAIN_RE.test(domain) || ctx.knownProviders.includes(domain)) return undefined;
      if (!trusts(domain)) {
        throw new AmpError(
          'provider_not_trusted',
          `Provider '${domain}' is not in this provider's federation allowlist`,
          {
            field: 'to',
            details: { provider: domain },
          },
        );
      }
      return { kind: 'federation', target: `federation:${domain}`, waitMs: 0 };
    },
    lookup: async () => undefined,
    localize: () => undefined,
  };
}
