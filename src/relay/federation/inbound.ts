// Messages and key lookups from other providers (spec §19.1), behind the transport's
// POST /v1/federation/deliver and GET /v1/federation/keys/{address}. Neither takes an API key: the
// caller is a provider, authenticated by X-AMP-Signature with the key its pin or discovery names
// (never one from the request), within ±300 s, each signature once, and trusted by
// AMP_FEDERATION_MODE. A delivery must then carry a message signed by its sender, whose key is the
// one the sender's home provider (the delivering one) answers for it, and not revoked.

import {
  AmpError,
  canonicalString,
  decodeSignature,
  parseAddress,
  parseJsonBody,
  payloadHash,
} from '../../../proto/index.js';
import { parseSenderKey } from '../../crypto/federation-keys.js';
import type { ParsedPublicKey } from '../../crypto/keys.js';
import { ReplayCache } from '../../crypto/replay.js';
import { REQUEST_TIMESTAMP_WINDOW_S, timestampProblem, verifyRequestSignature } from '../../crypto/request-signing.js';
import type { Ed25519Verifier } from '../../crypto/verifier.js';
import type { AgentRecord, DirectoryStore } from '../../store/types.js';
import type { RelayContext } from '../context.js';
import type { ForeignInbox } from '../foreign.js';
import { enforce } from '../ratelimit.js';
import type { ForeignOutcome } from '../remote.js';
import { type DeliverBody, decodeDeliverBody } from './envelope.js';
import type { HomeKey, HomeKeys } from './home-keys.js';
import { DOMAIN_RE } from './pins.js';
import { DiscoveryError, type ProviderInfo, type Providers } from './providers.js';

/** How far ahead of our clock an envelope's own timestamp may be. */
const ENVELOPE_FUTURE_S = 60;

/** The authentication headers of a request from another provider, as received. */
export interface ProviderHeaders {
  provider: string;
  timestamp: string;
  signature: string;
  /** Optional X-AMP-Key-Revoked: a fingerprint the delivering provider says is revoked. */
  keyRevoked: string;
}

export interface FederationInboundDeps {
  ctx: RelayContext;
  verifier: Ed25519Verifier;
  providers: Providers;
  homeKeys: HomeKeys;
  store: Pick<DirectoryStore, 'findRevokedKey'>;
  foreign: Pick<ForeignInbox, 'accept'>;
  findAgent: (address: string) => AgentRecord | undefined;
  /** Whether a provider may deliver here at all (AMP_FEDERATION_MODE). */
  trusts: (domain: string) => boolean;
}

export class FederationInbound {
  /** Provider signatures seen within the window (each accepted once). */
  private readonly seen = new ReplayCache(2 * REQUEST_TIMESTAMP_WINDOW_S * 1000);

  constructor(private readonly deps: FederationInboundDeps) {}

  /** POST federation/deliver: the message appended for its local recipient, or an AmpError. */
  async deliver(h: ProviderHeaders, raw: Buffer): Promise<ForeignOutcome> {
    const home = await this.authenticate(h, raw, true);
    const body = decodeDeliverBody(parseObject(raw));
    const { envelope } = body;
    const nowMs = Date.now();
    this.checkAddresses(body, home.domain);
    if (Date.parse(envelope.timestamp) > nowMs + ENVELOPE_FUTURE_S * 1000) {
      throw new AmpError('timestamp_future', 'envelope.timestamp is more than 60 s ahead of this provider', {
        field: 'envelope.timestamp',
      });
    }
    const recipientKey = `${home.domain}\n${envelope.to.toLowerCase()}`;
    enforce(this.deps.ctx.limits.take([['federation_recipient', recipientKey]]), 'recipient');
    const key = await this.senderKey(body, h);
    const current = await this.deps.homeKeys.lookup(home, envelope.from.toLowerCase(), [
      key.fingerprint,
      key.fingerprintRaw,
    ]);
    checkHomeKey(current, key);
    return this.deps.foreign.accept({
      envelope,
      payload: body.payload,
      senderKeyHex: key.raw.toString('hex'),
      signatureVerified: true,
      source: `federation:${home.domain}`,
    });
  }

  /** GET federation/keys/{address}: our agent's current key, and whether `fingerprint` is revoked. */
  async key(h: ProviderHeaders, address: string, fingerprint: string): Promise<HomeKey> {
    // A read: the same signed request again within the window answers the same, so it is not claimed once.
    await this.authenticate(h, `${address}\n${fingerprint}`, false);
    const agent = this.deps.findAgent(address);
    if (!agent) throw new AmpError('not_found', 'No agent with this address here', { details: { address } });
    const current = fingerprint === agent.fingerprint || fingerprint === agent.fingerprint_raw;
    const entry = fingerprint && !current ? this.deps.store.findRevokedKey(fingerprint) : undefined;
    return {
      address: agent.address,
      public_key: agent.public_key_pem,
      fingerprint: agent.fingerprint,
      key_revoked: entry !== undefined && entry.agent_address === agent.address,
    };
  }

  /** The calling provider, once trusted, fresh, within its limits and verified with its own key. */
  private async authenticate(h: ProviderHeaders, signed: string | Buffer, once: boolean): Promise<ProviderInfo> {
    const { ctx, providers } = this.deps;
    const domain = h.provider.trim().toLowerCase();
    if (!DOMAIN_RE.test(domain) || ctx.knownProviders.includes(domain) || !this.deps.trusts(domain)) {
      throw notTrusted(domain === '' ? 'X-AMP-Provider is required' : `Provider '${domain}' is not trusted here`);
    }
    checkTimestamp(h.timestamp);
    if (!h.signature) throw badProviderSignature('X-AMP-Signature is required');
    enforce(ctx.limits.take([['federation_total', '']]), 'federation');
    const info = await this.providerInfo(domain);
    const claim = [domain, h.timestamp, h.signature];
    if (once && !this.seen.claim(claim)) {
      throw new AmpError('replay_detected', 'This provider signature was already used', { field: 'X-AMP-Signature' });
    }
    const ok = await verifyRequestSignature(this.deps.verifier, info.publicKeyPem, h.timestamp, signed, h.signature);
    if (!ok) {
      if (once) this.seen.release(claim);
      if (info.via !== 'pin') providers.forget(domain);
      throw badProviderSignature(`X-AMP-Signature does not verify with the key of '${domain}'`);
    }
    // After the signature: requests that only name a provider cannot spend its tokens.
    enforce(ctx.limits.take([['federation', domain]]), 'provider');
    return info;
  }

  /** The provider's endpoint and key (pin or discovery). */
  private async providerInfo(domain: string): Promise<ProviderInfo> {
    try {
      return await this.deps.providers.resolve(domain);
    } catch (e) {
      if (!(e instanceof DiscoveryError)) throw e;
      // A fetch that failed says nothing about the provider: the sender retries on a 503.
      if (e.transient) {
        throw new AmpError('service_unavailable', `The key of '${domain}' cannot be fetched now: ${e.message}`, {
          retryAfter: 30,
        });
      }
      throw notTrusted(`Provider '${domain}' could not be discovered: ${e.message}`);
    }
  }

  /** The sender is the delivering provider's agent; the recipient is ours. */
  private checkAddresses(body: DeliverBody, provider: string): void {
    const from = body.envelope.from.toLowerCase();
    if (parseAddress(from, [provider]).provider !== provider) {
      throw notTrusted(`Provider '${provider}' may deliver only its own agents' messages (envelope.from ${from})`);
    }
    const { knownProviders } = this.deps.ctx;
    const to = body.envelope.to.toLowerCase();
    if (!knownProviders.includes(parseAddress(to, knownProviders).provider ?? '')) {
      throw new AmpError('recipient_not_found', `'${to}' is not an address of this provider`, { field: 'envelope.to' });
    }
  }

  /** The sender's key as sent: present, not revoked here, and its signature over the message verifies. */
  private async senderKey(body: DeliverBody, h: ProviderHeaders): Promise<ParsedPublicKey> {
    const { envelope } = body;
    if (!envelope.signature) {
      throw new AmpError('signature_invalid', 'Messages from another provider must be signed by their sender', {
        field: 'envelope.signature',
      });
    }
    if (!body.sender_public_key) {
      throw new AmpError('missing_field', 'sender_public_key is required', { field: 'sender_public_key' });
    }
    const key = parseSenderKey(body.sender_public_key);
    if (!key)
      throw new AmpError('invalid_field', 'sender_public_key must be an Ed25519 PEM or 64 hex', {
        field: 'sender_public_key',
      });
    const fps = [key.fingerprint, key.fingerprintRaw];
    if (this.deps.store.findRevokedKey(key.fingerprint) || (h.keyRevoked && fps.includes(h.keyRevoked.trim()))) {
      throw revoked();
    }
    const sig = decodeSignature(envelope.signature);
    const data = canonicalString({ ...envelope, payload_hash: payloadHash(body.payload) });
    if (!sig || !(await this.deps.verifier.verify(key.pem, Buffer.from(data, 'utf8'), sig))) {
      throw new AmpError('signature_invalid', 'The message signature does not verify with sender_public_key', {
        field: 'envelope.signature',
      });
    }
    return key;
  }
}

function checkHomeKey(home: HomeKey, key: ParsedPublicKey): void {
  if (home.key_revoked) throw revoked();
  const current = parseSenderKey(home.public_key);
  if (!current?.raw.equals(key.raw)) {
    throw new AmpError('key_mismatch', "sender_public_key is not the sender's key at its home provider", {
      field: 'sender_public_key',
      details: { expected_fingerprint: home.fingerprint },
    });
  }
}

function checkTimestamp(ts: string): void {
  const problem = timestampProblem(ts);
  if (problem === 'malformed') {
    throw new AmpError('invalid_request', 'X-AMP-Timestamp must be Unix seconds', { field: 'X-AMP-Timestamp' });
  }
  if (problem === 'skewed') {
    if (Number(ts) * 1000 > Date.now()) {
      throw new AmpError('timestamp_future', 'X-AMP-Timestamp is more than 300 s ahead', { field: 'X-AMP-Timestamp' });
    }
    throw badProviderSignature('X-AMP-Timestamp is more than 300 s old');
  }
}

function parseObject(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) throw new AmpError('invalid_request', 'Request body is empty; a JSON object is required');
  const parsed = parseJsonBody(raw.toString('utf8'));
  if (!parsed.ok) throw new AmpError('invalid_request', `Request body is not valid JSON: ${parsed.error}`);
  const v = parsed.value;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  return v as Record<string, unknown>;
}

function notTrusted(message: string): AmpError {
  return new AmpError('provider_not_trusted', message, { field: 'X-AMP-Provider' });
}

function badProviderSignature(message: string): AmpError {
  return new AmpError('signature_invalid', message, { field: 'X-AMP-Signature' });
}

function revoked(): AmpError {
  return new AmpError('key_revoked', "The sender's key has been revoked", { field: 'sender_public_key' });
}
