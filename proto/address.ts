// AMP addresses (spec §2): grammar, parsing, normalisation and short-form expansion.
//
//   address    = agent-name "@" scope "." provider
//   agent-name = 1*63( ALPHA / DIGIT / "-" / "_" )
//   scope      = label *( "." label )          ; [repo "." platform "."] tenant
//   provider   = label 1*( "." label )         ; at least two labels
//   label      = 1*63( ALPHA / DIGIT / "-" )

export const MAX_ADDRESS_CHARS = 254;
export const DEFAULT_PROVIDER_DOMAIN = 'aimaestro.local';

const AGENT_NAME_RE = /^[a-z0-9_-]{1,63}$/;
const PRINTABLE_ASCII_RE = /^[\x21-\x7e]*$/;
const LABEL_RE = /^[a-z0-9-]{1,63}$/;

/** Stricter rules for the names we create at registration. */
export const REGISTERED_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const REGISTERED_LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Tenants that double as path segments of the AID service and so cannot be registered. */
export const RESERVED_TENANTS: ReadonlySet<string> = new Set([
  'v1',
  'api',
  'agents',
  'admin',
  'oauth',
  'health',
  'metrics',
  'ws',
  'well-known',
  'static',
  'docs',
  'dashboard',
]);

export interface ParsedAddress {
  name: string;
  tenant: string | null;
  provider: string | null;
  is_local: boolean | null;
}

const LOCAL_SUFFIXES = ['.local', '.internal', '.localhost'];

export function isLocalProvider(provider: string): boolean {
  return LOCAL_SUFFIXES.some((s) => provider.endsWith(s));
}

/**
 * Split an address into name, tenant (all scope labels, dot-joined) and provider. The provider is
 * the longest suffix that is a known provider domain, else the last two labels. No `@` means a
 * short form whose tenant and provider are filled in at routing time.
 */
export function parseAddress(
  input: string,
  knownProviders: readonly string[] = [DEFAULT_PROVIDER_DOMAIN],
): ParsedAddress {
  const at = input.indexOf('@');
  if (at < 0) return { name: input, tenant: null, provider: null, is_local: null };
  const name = input.slice(0, at);
  const domain = input.slice(at + 1);
  let provider: string | null = null;
  for (const known of knownProviders) {
    if ((domain === known || domain.endsWith('.' + known)) && (provider === null || known.length > provider.length)) {
      provider = known;
    }
  }
  if (provider === null) {
    const labels = domain.split('.');
    provider = labels.slice(-2).join('.');
  }
  const scope = domain.length > provider.length ? domain.slice(0, domain.length - provider.length - 1) : '';
  return { name, tenant: scope === '' ? null : scope, provider, is_local: isLocalProvider(provider) };
}

/** True when `s` (already lowercase) follows the full address grammar. */
export function isFullAddress(s: string): boolean {
  if (s.length > MAX_ADDRESS_CHARS) return false;
  const at = s.indexOf('@');
  if (at < 0 || s.indexOf('@', at + 1) >= 0) return false;
  if (!AGENT_NAME_RE.test(s.slice(0, at))) return false;
  const labels = s.slice(at + 1).split('.');
  return labels.length >= 3 && labels.every((l) => LABEL_RE.test(l));
}

export type AddressProblem = 'grammar' | 'no_tenant';

export interface ExpandContext {
  /** Tenant of the agent writing the address; fills in a bare name. */
  senderTenant: string;
  /** Our provider domain (`AMP_PROVIDER_DOMAIN`). */
  domain: string;
}

/**
 * Lowercase and expand an address to its full form:
 * `name` -> `name@<sender tenant>.<domain>`; `name@x` (one label) -> `name@x.<domain>`.
 * Returns the full address, or the reason it is not one.
 */
export function expandAddress(
  raw: string,
  ctx: ExpandContext,
): { ok: true; address: string } | { ok: false; problem: AddressProblem } {
  // ASCII only, checked before lowercasing: some non-ASCII letters lowercase to ASCII (U+212A -> k).
  if (!PRINTABLE_ASCII_RE.test(raw)) return { ok: false, problem: 'grammar' };
  const s = raw.toLowerCase();
  const at = s.indexOf('@');
  let full: string;
  if (at < 0) {
    if (!AGENT_NAME_RE.test(s)) return { ok: false, problem: 'grammar' };
    full = `${s}@${ctx.senderTenant}.${ctx.domain}`;
  } else {
    const domain = s.slice(at + 1);
    if (domain === ctx.domain) return { ok: false, problem: 'no_tenant' };
    full = domain.includes('.') ? s : `${s}.${ctx.domain}`;
  }
  return isFullAddress(full) ? { ok: true, address: full } : { ok: false, problem: 'grammar' };
}

export interface LocalParts {
  name: string;
  tenant: string;
  platform?: string;
  repo?: string;
}

/**
 * For a full address on our own provider: name, tenant (rightmost scope label), then platform and
 * repo. Returns null when the scope has more labels than a registration can have.
 */
export function localParts(full: string, provider: string): LocalParts | null {
  const at = full.indexOf('@');
  const scope = full.slice(at + 1, full.length - provider.length - 1).split('.');
  if (scope.length < 1 || scope.length > 3 || scope[0] === '') return null;
  const tenant = scope[scope.length - 1];
  const parts: LocalParts = { name: full.slice(0, at), tenant };
  if (scope.length >= 2) parts.platform = scope[scope.length - 2];
  if (scope.length === 3) parts.repo = scope[0];
  return parts;
}

export function formatAddress(
  name: string,
  tenant: string,
  domain: string,
  scope?: { platform: string; repo: string },
): string {
  return scope ? `${name}@${scope.repo}.${scope.platform}.${tenant}.${domain}` : `${name}@${tenant}.${domain}`;
}
