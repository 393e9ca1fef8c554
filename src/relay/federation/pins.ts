// AMP_FEDERATION_PINS (spec §19.1): a JSON file of pinned providers,
//   {"b.example": {"endpoint": "https://amp.b.example/v1", "public_key": "<PEM or SHA256:… fingerprint>"}}
// A pin names where a provider is and which key it signs with; a pinned key is never taken from the
// network (a fingerprint pin fetches the key from the provider and checks it against the pin).
// Checked at start (`amp-relay check-config` and `serve` name every problem).

import { readFileSync } from 'node:fs';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import { type AllowList, addressAllowed, hostAllowed } from '../../outbound/allow-list.js';

export interface Pin {
  domain: string;
  /** The provider's API base, without a trailing slash, ending in `/v1` or `/api/v1`. */
  endpoint: string;
  /** The canonical PEM when the pin holds the key itself; undefined for a fingerprint pin. */
  publicKeyPem?: string;
  /** `SHA256:…` of the key (for a PEM pin: of its SubjectPublicKeyInfo). */
  fingerprint: string;
}

/** Is federation on (advertised as `federation: true`)? Pins set and AMP_FEDERATION_MODE not `closed`. */
export function federationEnabled(config: { federationPins: string; federationMode: string }): boolean {
  return config.federationPins !== '' && config.federationMode !== 'closed';
}

export const DOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}=$/;

/** The pins of a file, or the problems that make it unusable (each naming the setting and the entry). */
export function readPinsFile(path: string, name: string, allowHttp: AllowList): { pins: Pin[]; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { pins: [], problems: [`${name}: cannot read '${path}' (${(e as NodeJS.ErrnoException).code ?? e})`] };
  }
  return parsePins(text, `${name} (${path})`, allowHttp);
}

export function parsePins(text: string, name: string, allowHttp: AllowList): { pins: Pin[]; problems: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { pins: [], problems: [`${name} is not valid JSON: ${(e as Error).message}`] };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { pins: [], problems: [`${name} must be a JSON object {"<domain>": {"endpoint", "public_key"}}`] };
  }
  const pins: Pin[] = [];
  const problems: string[] = [];
  for (const [domain, entry] of Object.entries(doc)) {
    const p = parsePin(domain, entry, allowHttp);
    if (typeof p === 'string') problems.push(`${name}: '${domain}' ${p}`);
    else pins.push(p);
  }
  return { pins, problems };
}

function parsePin(domain: string, entry: unknown, allowHttp: AllowList): Pin | string {
  if (!DOMAIN_RE.test(domain)) return 'is not a lowercase domain of two or more labels';
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    return 'must be an object {"endpoint", "public_key"}';
  }
  const { endpoint, public_key: key, ...rest } = entry as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) return `has unknown field(s) ${extra.join(', ')} (only endpoint and public_key)`;
  const ep = endpointProblem(endpoint, allowHttp);
  if (typeof ep !== 'object') return ep;
  if (typeof key !== 'string' || key.trim() === '')
    return 'needs public_key (a PEM Ed25519 key or a SHA256:… fingerprint)';
  if (FINGERPRINT_RE.test(key.trim())) return { domain, endpoint: ep.endpoint, fingerprint: key.trim() };
  const parsed = parsePublicKeyPem(key);
  if (typeof parsed === 'string') {
    return `public_key must be an Ed25519 public key in PEM or a SHA256:<base64> fingerprint (${parsed})`;
  }
  return { domain, endpoint: ep.endpoint, publicKeyPem: parsed.pem, fingerprint: parsed.fingerprint };
}

/** An endpoint: an absolute http(s) URL ending in /v1 or /api/v1; http only for AMP_FEDERATION_ALLOW_HTTP hosts. */
export function endpointProblem(endpoint: unknown, allowHttp: AllowList): { endpoint: string } | string {
  if (typeof endpoint !== 'string') return 'needs endpoint (a base URL ending in /v1 or /api/v1)';
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `endpoint '${endpoint}' is not a URL`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `endpoint '${endpoint}' must be https`;
  if (url.username || url.password || url.search || url.hash) {
    return `endpoint '${endpoint}' must have no credentials, query or fragment`;
  }
  const base = url.href.replace(/\/+$/, '');
  if (!/\/(api\/)?v1$/.test(base)) return `endpoint '${endpoint}' must end in /v1 or /api/v1`;
  if (url.protocol === 'http:' && !httpAllowed(url, allowHttp)) {
    return `endpoint '${endpoint}' must be https (http only for hosts in AMP_FEDERATION_ALLOW_HTTP)`;
  }
  return { endpoint: base };
}

/** May this URL be reached over plain http (its host listed by name, or an IP literal inside a listed CIDR)? */
export function httpAllowed(url: URL, allowHttp: AllowList): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return hostAllowed(allowHttp, host) || addressAllowed(allowHttp, host);
}
