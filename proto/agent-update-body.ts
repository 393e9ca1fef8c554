// Decoding PATCH agents/me (spec §7.1): alias, delivery.prefer_websocket, metadata, capabilities.
// Identity fields (name, tenant, address, key, ...) can never change this way and are refused by
// name. Checks run in a fixed order, so the first problem of a body is always the one reported.

import { AmpError, invalidField } from './errors.js';
import {
  MAX_ALIAS_CHARS,
  MAX_CAPABILITIES,
  MAX_CAPABILITY_CHARS,
  MAX_METADATA_BYTES,
  codePointLength,
} from './limits.js';
import { decodeWebhookSecret, decodeWebhookUrl } from './register-body.js';

export const IMMUTABLE_AGENT_FIELDS = [
  'name',
  'tenant',
  'scope',
  'address',
  'short_address',
  'public_key',
  'key_algorithm',
  'agent_id',
  'fingerprint',
] as const;

/** What to change; an absent field is left as it is. */
export interface AgentUpdateRequest {
  /** A string sets the alias, null removes it. */
  alias?: string | null;
  prefer_websocket?: boolean;
  /** A string sets the webhook URL (checked by the relay: SSRF rules), null removes the webhook. */
  webhook_url?: string | null;
  /** A new secret; a new webhook_url needs one unless the agent already has a secret. */
  webhook_secret?: string;
  /** Replaces the metadata wholesale; at most MAX_METADATA_BYTES of compact JSON. */
  metadata?: Record<string, unknown>;
  /** Replaces the capabilities wholesale. */
  capabilities?: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function decodeAgentUpdateBody(body: unknown): AgentUpdateRequest {
  if (!isObject(body)) throw new AmpError('invalid_request', 'Request body must be a JSON object');
  for (const f of IMMUTABLE_AGENT_FIELDS) if (body[f] !== undefined) throw invalidField(f, `'${f}' cannot be changed`);
  const req: AgentUpdateRequest = {};
  const { alias, delivery, metadata, capabilities } = body;
  if (alias !== undefined) {
    if (alias !== null && (typeof alias !== 'string' || codePointLength(alias) > MAX_ALIAS_CHARS)) {
      throw invalidField('alias', `alias must be a string of at most ${MAX_ALIAS_CHARS} characters`);
    }
    req.alias = alias;
  }
  if (delivery !== undefined) {
    if (!isObject(delivery)) throw invalidField('delivery', 'delivery must be an object');
    decodeWebhookFields(delivery, req);
    if (delivery.prefer_websocket !== undefined) {
      if (typeof delivery.prefer_websocket !== 'boolean')
        throw invalidField('delivery.prefer_websocket', 'prefer_websocket must be true or false');
      req.prefer_websocket = delivery.prefer_websocket;
    }
  }
  if (metadata !== undefined) {
    if (!isObject(metadata)) throw invalidField('metadata', 'metadata must be an object');
    if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES)
      throw invalidField('metadata', `metadata must be at most ${MAX_METADATA_BYTES} bytes of JSON`);
    req.metadata = metadata;
  }
  if (capabilities !== undefined) {
    if (
      !Array.isArray(capabilities) ||
      capabilities.length > MAX_CAPABILITIES ||
      capabilities.some((x) => typeof x !== 'string' || x.length > MAX_CAPABILITY_CHARS)
    ) {
      throw invalidField(
        'capabilities',
        `capabilities: at most ${MAX_CAPABILITIES} strings of at most ${MAX_CAPABILITY_CHARS} characters`,
      );
    }
    req.capabilities = capabilities;
  }
  return req;
}

/** `webhook_url` (string or null) and `webhook_secret`, merged field by field (§7.1). */
function decodeWebhookFields(delivery: Record<string, unknown>, req: AgentUpdateRequest): void {
  const { webhook_url: url, webhook_secret: secret } = delivery;
  if (url === null) {
    if (secret != null) throw invalidField('delivery.webhook_secret', 'webhook_secret needs a webhook_url');
    req.webhook_url = null;
    return;
  }
  if (url !== undefined) req.webhook_url = decodeWebhookUrl(url);
  if (secret != null) req.webhook_secret = decodeWebhookSecret(secret);
}
