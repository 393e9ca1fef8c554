// Finding another provider (spec §19.1): its API endpoint and the key it signs with. In order: a pin
// (AMP_FEDERATION_PINS), the DNS TXT record `_amp._tcp.<domain>`, then
// `https://<domain>/.well-known/agent-messaging.json`. When only a fingerprint is known (a fingerprint
// pin, a TXT record) the key is fetched from the provider's `<endpoint>/info` and must match it.
// Answers are cached for an hour; every fetch follows the SSRF rules (https only, public addresses
// only, except hosts in AMP_FEDERATION_ALLOW_HTTP).

import { resolveTxt } from 'node:dns/promises';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import { type AllowList, fetchChecked, UrlRefusedError } from '../../outbound/index.js';
import { endpointProblem, type Pin } from './pins.js';
import { parseAmpTxt } from './txt.js';

export const PROVIDER_CACHE_MS = 3_600_000;
const MAX_CACHED = 10_000;
const FORGET_AFTER_MS = 60_000;
const DOC_MAX_BYTES = 64 * 1024;

export interface ProviderInfo {
  domain: string;
  endpoint: string;
  publicKeyPem: string;
  /** Both fingerprint forms of the key (of its SubjectPublicKeyInfo, of the raw 32 bytes). */
  fingerprints: readonly string[];
  via: 'pin' | 'dns' | 'well-known';
}

/**
 * Why a provider could not be found or trusted (the message says which step failed). `transient`:
 * a fetch failed (network, timeout, an error status), so asking again later may succeed; otherwise
 * what the provider publishes is wrong (a key that does not match its pin, a bad document).
 */
export class DiscoveryError extends Error {
  override readonly name = 'DiscoveryError';
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super(message);
  }
}

export type TxtResolver = (name: string) => Promise<string[][]>;

export interface ProvidersOptions {
  pins: readonly Pin[];
  allowHttp: AllowList;
  txt?: TxtResolver;
  now?: () => number;
}

export class Providers {
  private readonly pins: Map<string, Pin>;
  private readonly cache = new Map<string, { info: ProviderInfo; until: number }>();
  private readonly pending = new Map<string, Promise<ProviderInfo>>();
  private readonly txt: TxtResolver;
  private readonly now: () => number;

  constructor(private readonly opts: ProvidersOptions) {
    this.pins = new Map(opts.pins.map((p) => [p.domain, p]));
    this.txt = opts.txt ?? resolveTxt;
    this.now = opts.now ?? Date.now;
  }

  isPinned(domain: string): boolean {
    return this.pins.has(domain);
  }

  pinnedDomains(): string[] {
    return [...this.pins.keys()];
  }

  /** The provider's endpoint and key; throws DiscoveryError. Concurrent asks share one discovery. */
  resolve(domain: string): Promise<ProviderInfo> {
    const hit = this.cache.get(domain);
    if (hit && hit.until > this.now()) return Promise.resolve(hit.info);
    const running = this.pending.get(domain);
    if (running) return running;
    const work = this.discover(domain).then((info) => {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.delete(domain);
      this.cache.set(domain, { info, until: this.now() + PROVIDER_CACHE_MS });
      return info;
    });
    this.pending.set(domain, work);
    const done = () => this.pending.delete(domain);
    work.then(done, done);
    return work;
  }

  /**
   * Forget a cached answer (the provider's signature no longer verifies with it: it may have a new
   * key), unless it is younger than a minute (forged requests must not make us discover again and again).
   */
  forget(domain: string): void {
    const hit = this.cache.get(domain);
    if (hit && hit.until - PROVIDER_CACHE_MS + FORGET_AFTER_MS <= this.now()) this.cache.delete(domain);
  }

  private async discover(domain: string): Promise<ProviderInfo> {
    const pin = this.pins.get(domain);
    if (pin) {
      if (pin.publicKeyPem) return info(domain, pin.endpoint, pin.publicKeyPem, 'pin');
      return this.keyOf(domain, pin.endpoint, pin.fingerprint, 'pin');
    }
    const txt = await this.txtRecord(domain);
    if (txt) {
      const ep = endpointProblem(txt.endpoint, this.opts.allowHttp);
      if (typeof ep === 'string') throw new DiscoveryError(`DNS TXT _amp._tcp.${domain}: ${ep}`);
      return this.keyOf(domain, ep.endpoint, txt.fingerprint, 'dns');
    }
    return this.wellKnown(domain);
  }

  /** The TXT record, undefined when there is none (then the well-known document is asked). */
  private async txtRecord(domain: string): Promise<{ endpoint: string; fingerprint: string } | undefined> {
    let records: string[][];
    try {
      records = await this.txt(`_amp._tcp.${domain}`);
    } catch {
      return undefined;
    }
    const r = parseAmpTxt(records);
    return typeof r === 'object' ? r : undefined;
  }

  /** A known fingerprint: the key from `<endpoint>/info`, which must have that fingerprint. */
  private async keyOf(domain: string, endpoint: string, fp: string, via: ProviderInfo['via']): Promise<ProviderInfo> {
    const doc = await this.fetchJson(`${endpoint}/info`);
    const pem = typeof doc.public_key === 'string' ? doc.public_key : '';
    const found = info(domain, endpoint, pem, via);
    if (!found.fingerprints.includes(fp)) {
      throw new DiscoveryError(`${endpoint}/info answers a key whose fingerprint is not the expected ${fp}`);
    }
    return found;
  }

  private async wellKnown(domain: string): Promise<ProviderInfo> {
    const doc = await this.fetchJson(`https://${domain}/.well-known/agent-messaging.json`);
    const ep = endpointProblem(doc.endpoint, this.opts.allowHttp);
    if (typeof ep === 'string') throw new DiscoveryError(`${domain} discovery document: ${ep}`);
    if (doc.provider !== undefined && doc.provider !== domain) {
      throw new DiscoveryError(`${domain} discovery document names provider '${String(doc.provider)}'`);
    }
    return info(domain, ep.endpoint, typeof doc.public_key === 'string' ? doc.public_key : '', 'well-known');
  }

  private async fetchJson(url: string): Promise<Record<string, unknown>> {
    let res: Awaited<ReturnType<typeof fetchChecked>>;
    try {
      res = await fetchChecked(url, {
        allow: this.opts.allowHttp,
        headers: { Accept: 'application/json' },
        maxBodyBytes: DOC_MAX_BYTES,
      });
    } catch (e) {
      const refused = e instanceof UrlRefusedError && e.reason !== 'unresolvable';
      throw new DiscoveryError(`${url}: ${(e as Error).message}`, !refused);
    }
    if (res.status !== 200) throw new DiscoveryError(`${url} answered ${res.status}`, true);
    if (res.truncated) throw new DiscoveryError(`${url} is larger than ${DOC_MAX_BYTES} bytes`);
    try {
      const doc = JSON.parse(res.body.toString('utf8')) as unknown;
      if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) return doc as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new DiscoveryError(`${url} is not a JSON object`);
  }
}

function info(domain: string, endpoint: string, pem: string, via: ProviderInfo['via']): ProviderInfo {
  const key = parsePublicKeyPem(pem);
  if (typeof key === 'string') throw new DiscoveryError(`${domain}: the provider's public_key is not an Ed25519 PEM`);
  return { domain, endpoint, publicKeyPem: key.pem, fingerprints: [key.fingerprint, key.fingerprintRaw], via };
}
