// Discovery (`/.well-known/agent-messaging.json`), `info` and `health` documents (spec §3).

import {
  AMP_VERSION,
  DISCOVERY_VERSION,
  isoTime,
  SUBPROTOCOLS,
  WS_PATHS,
  MAX_CONTEXT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_REQUEST_BYTES,
  MAX_STORED_MESSAGE_BYTES,
  MAX_SUBJECT_CHARS,
  MAX_ATTACHMENT_BYTES,
  MAX_ATTACHMENTS_PER_MESSAGE,
  MAX_TOTAL_ATTACHMENT_BYTES,
} from '../../proto/index.js';
import type { Config } from '../config/schema.js';
import { providerUrls, type RelayContext } from '../relay/context.js';
import { federationEnabled } from '../relay/federation/pins.js';
import { VERSION } from '../version.js';

/**
 * Cache headers of a public document with absolute URLs in it. With AMP_PUBLIC_URL the document is
 * the same for every request; without it, it is derived from Host (and X-Forwarded-Proto/-Host from
 * a trusted proxy), which Vary names so that a shared cache keeps one copy per origin.
 */
export function publicCacheHeaders(config: Config, maxAgeSeconds: number): Record<string, string> {
  const headers: Record<string, string> = { 'Cache-Control': `public, max-age=${maxAgeSeconds}` };
  if (!config.publicUrl)
    headers.Vary = config.trustedProxies.length > 0 ? 'Host, X-Forwarded-Proto, X-Forwarded-Host' : 'Host';
  return headers;
}

// Only what is built (and turned on) is advertised.
const CORE_CAPABILITIES = ['registration', 'local-delivery', 'relay-queue', 'websockets', 'webhooks'];

function capabilities(config: Config): string[] {
  const caps = config.attachments ? [...CORE_CAPABILITIES, 'attachments'] : CORE_CAPABILITIES;
  const withMesh = config.meshConfig ? [...caps, 'mesh-routing'] : caps;
  return federationEnabled(config) ? [...withMesh, 'federation'] : withMesh;
}

/** §22 `attachment_limits`; `av_scanning` only when clamd is configured. */
function attachmentLimits(config: Config): Record<string, unknown> {
  return {
    max_attachment_size: MAX_ATTACHMENT_BYTES,
    max_total_attachment_size: MAX_TOTAL_ATTACHMENT_BYTES,
    max_attachments_per_message: MAX_ATTACHMENTS_PER_MESSAGE,
    direct_upload: false,
    av_scanning: config.clamdSocket !== '' || config.clamdHost !== '',
  };
}

export function wellKnown(ctx: RelayContext, host: string, proto: string): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    version: DISCOVERY_VERSION,
    endpoint: providerUrls(ctx.config, host, proto).endpoint,
    provider: ctx.config.providerDomain,
    public_key: ctx.providerKey.publicKey.pem,
    fingerprint: ctx.providerKey.publicKey.fingerprint,
    capabilities: capabilities(ctx.config),
    federation: federationEnabled(ctx.config),
  };
  if (ctx.config.contact) doc.contact = ctx.config.contact;
  if (ctx.config.attachments) doc.attachment_limits = attachmentLimits(ctx.config);
  return doc;
}

export function info(ctx: RelayContext, host: string, proto: string): Record<string, unknown> {
  const { config } = ctx;
  return {
    provider: config.providerDomain,
    version: AMP_VERSION,
    public_key: ctx.providerKey.publicKey.pem,
    fingerprint: ctx.providerKey.publicKey.fingerprint,
    capabilities: capabilities(ctx.config),
    registration_modes: [config.registrationMode],
    ...(ctx.limits.enabled
      ? {
          rate_limits: {
            messages_per_minute: ctx.limits.perMinute('route'),
            api_requests_per_minute: ctx.limits.perMinute('api'),
          },
        }
      : {}),
    endpoint: providerUrls(config, host, proto).endpoint,
    implementation: { name: 'amp-relay', version: VERSION },
    key_algorithms: ['Ed25519'],
    signatures: config.signatures,
    federation: federationEnabled(config),
    limits: {
      max_subject_chars: MAX_SUBJECT_CHARS,
      max_message_bytes: MAX_MESSAGE_BYTES,
      max_context_bytes: MAX_CONTEXT_BYTES,
      max_stored_message_bytes: MAX_STORED_MESSAGE_BYTES,
      max_request_bytes: MAX_REQUEST_BYTES,
      max_queue_per_agent: config.maxQueue,
      relay_ttl_seconds: config.relayTtl,
    },
    ...(config.attachments ? { attachment_limits: attachmentLimits(config) } : {}),
    websocket: {
      paths: [...WS_PATHS],
      subprotocols: [...SUBPROTOCOLS],
      auth_timeout_seconds: config.wsAuthTimeout,
      idle_timeout_seconds: config.wsIdleTimeout,
    },
  };
}

export interface HealthInputs {
  shuttingDown: boolean;
  storeHealthy: boolean;
  /** Whether store writes commit (a full disk makes them fail until space is freed). */
  writes: { ok: true } | { ok: false; reason: string; since: number };
  agentsOnline: number;
  /** §19.2, when a mesh is configured: its peers and how many answered last. */
  mesh?: { enabled: boolean; hosts_configured: number; hosts_reachable: number; self_host_id: string };
}

/**
 * Liveness: 503 only when the server cannot serve at all. Failing writes make it `degraded` (200,
 * with the reason): reads, sessions and pushes of what is stored still work, and restarting would
 * not free space. Readiness (`ready`) is the one that turns 503 then.
 */
export function health(ctx: RelayContext, h: HealthInputs): { status: number; body: Record<string, unknown> } {
  const ok = !h.shuttingDown && h.storeHealthy;
  const degraded = ok && !h.writes.ok;
  return {
    status: ok ? 200 : 503,
    body: {
      status: degraded ? 'degraded' : ok ? 'healthy' : 'unhealthy',
      ...(h.writes.ok ? {} : { reason: `store writes fail: ${h.writes.reason}`, since: isoTime(h.writes.since) }),
      version: VERSION,
      provider: ctx.config.providerDomain,
      federation: federationEnabled(ctx.config),
      agents_online: h.agentsOnline,
      uptime_seconds: Math.floor((Date.now() - ctx.startedAt) / 1000),
      ...(h.mesh ? { mesh: h.mesh } : {}),
    },
  };
}

/** Readiness: 200 while the server accepts writes; 503 while writes fail or it shuts down. */
export function ready(h: HealthInputs): { status: number; body: Record<string, unknown> } {
  let reason: string | undefined;
  if (h.shuttingDown) reason = 'shutting down';
  else if (!h.storeHealthy) reason = 'store unavailable';
  else if (!h.writes.ok) reason = `store writes fail: ${h.writes.reason}`;
  return reason === undefined
    ? { status: 200, body: { status: 'ready' } }
    : { status: 503, body: { status: 'not_ready', reason } };
}
