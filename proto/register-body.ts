// Decoding a registration request (spec §4). Key parsing is left to the caller (it needs
// node:crypto's key objects); everything else about the body is checked here.

import { AmpError, invalidField } from './errors.js';
import { REGISTERED_LABEL_RE, REGISTERED_NAME_RE, RESERVED_TENANTS } from './address.js';
import {
  IDEMPOTENCY_KEY_RE,
  MAX_ALIAS_CHARS,
  MAX_CAPABILITIES,
  MAX_CAPABILITY_CHARS,
  MAX_METADATA_BYTES,
  codePointLength,
} from './limits.js';
import { RegisterBodySchema, assertShape, compile } from './schemas.js';

const checkRegisterBody = compile(RegisterBodySchema);

export interface RegisterRequest {
  name: string;
  tenant: string;
  public_key: string;
  alias?: string;
  scope?: { platform: string; repo: string };
  prefer_websocket: boolean;
  /** §18: checked against the SSRF rules by the relay (it needs DNS), with its secret. */
  webhook?: { url: string; secret: string };
  metadata: Record<string, unknown>;
  capabilities: string[];
  client_agent_id?: string;
  proof?: { timestamp: string; signature: string };
}

/** Lowercase after checking the input is ASCII (some non-ASCII letters lowercase to ASCII). */
function lower(value: string): string {
  return /^[\x21-\x7e]*$/.test(value) ? value.toLowerCase() : '\u0000';
}

function label(field: string, value: string): string {
  const v = lower(value);
  if (!REGISTERED_LABEL_RE.test(v)) {
    throw invalidField(field, `${field} must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'`);
  }
  return v;
}

export function decodeRegisterBody(body: unknown, defaultTenant: string): RegisterRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  assertShape(checkRegisterBody, body);

  const name = lower(body.name);
  if (!REGISTERED_NAME_RE.test(name)) {
    throw invalidField(
      'name',
      "name must be 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
    );
  }
  const tenant = label('tenant', body.tenant ?? defaultTenant);
  if (RESERVED_TENANTS.has(tenant)) throw invalidField('tenant', `tenant '${tenant}' is reserved`);

  const algorithm = body.key_algorithm ?? 'Ed25519';
  if (algorithm.toLowerCase() !== 'ed25519') {
    throw new AmpError(
      'invalid_field',
      `key_algorithm '${algorithm}' is not supported by this provider; only Ed25519 is accepted`,
      {
        field: 'key_algorithm',
        details: { supported: ['Ed25519'] },
      },
    );
  }

  const req: RegisterRequest = {
    name,
    tenant,
    public_key: body.public_key,
    prefer_websocket: body.delivery?.prefer_websocket ?? true,
    metadata: body.metadata ?? {},
    capabilities: body.capabilities ?? [],
  };

  if (body.alias != null) {
    if (codePointLength(body.alias) > MAX_ALIAS_CHARS)
      throw invalidField('alias', `alias must be at most ${MAX_ALIAS_CHARS} characters`);
    req.alias = body.alias;
  }
  if (body.scope != null) {
    const { platform, repo } = body.scope;
    if ((platform == null) !== (repo == null))
      throw invalidField('scope', 'scope needs both platform and repo, or neither');
    if (platform != null && repo != null)
      req.scope = { platform: label('scope.platform', platform), repo: label('scope.repo', repo) };
  }
  const webhook = decodeWebhook(body.delivery?.webhook_url, body.delivery?.webhook_secret);
  if (webhook) req.webhook = webhook;
  if (Buffer.byteLength(JSON.stringify(req.metadata), 'utf8') > MAX_METADATA_BYTES) {
    throw invalidField('metadata', `metadata must be at most ${MAX_METADATA_BYTES} bytes of JSON`);
  }
  if (req.capabilities.length > MAX_CAPABILITIES || req.capabilities.some((c) => c.length > MAX_CAPABILITY_CHARS)) {
    throw invalidField(
      'capabilities',
      `capabilities: at most ${MAX_CAPABILITIES} strings of at most ${MAX_CAPABILITY_CHARS} characters`,
    );
  }
  if (body.agent_id != null) {
    if (!IDEMPOTENCY_KEY_RE.test(body.agent_id))
      throw invalidField('agent_id', 'agent_id must be a UUID or similar identifier');
    req.client_agent_id = body.agent_id;
  }
  if (body.proof != null) {
    const ts = String(body.proof.timestamp);
    if (!/^[0-9]{1,12}$/.test(ts)) throw invalidField('proof.timestamp', 'proof.timestamp must be unix seconds');
    req.proof = { timestamp: ts, signature: body.proof.signature };
  }
  return req;
}

/** At least this many characters in a webhook secret (§4). */
export const MIN_WEBHOOK_SECRET_CHARS = 16;
const MAX_WEBHOOK_URL_CHARS = 2048;
const MAX_WEBHOOK_SECRET_CHARS = 256;

/** `delivery.webhook_url` with its `webhook_secret` (§4: the URL requires a secret of ≥ 16 characters). */
export function decodeWebhook(url: unknown, secret: unknown): { url: string; secret: string } | undefined {
  if (url == null) {
    if (secret != null) throw invalidField('delivery.webhook_secret', 'webhook_secret needs a webhook_url');
    return undefined;
  }
  return { url: decodeWebhookUrl(url), secret: decodeWebhookSecret(secret) };
}

/** The URL's shape only; the SSRF rules (§18) are the relay's check. */
export function decodeWebhookUrl(url: unknown): string {
  if (typeof url !== 'string' || url.length > MAX_WEBHOOK_URL_CHARS)
    throw invalidField(
      'delivery.webhook_url',
      `webhook_url must be a URL of at most ${MAX_WEBHOOK_URL_CHARS} characters`,
    );
  return url;
}

export function decodeWebhookSecret(secret: unknown): string {
  if (
    typeof secret !== 'string' ||
    codePointLength(secret) < MIN_WEBHOOK_SECRET_CHARS ||
    codePointLength(secret) > MAX_WEBHOOK_SECRET_CHARS
  ) {
    throw invalidField(
      'delivery.webhook_secret',
      `webhook_url requires a webhook_secret of ${MIN_WEBHOOK_SECRET_CHARS}-${MAX_WEBHOOK_SECRET_CHARS} characters`,
    );
  }
  return secret;
}
