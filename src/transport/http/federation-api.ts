// Provider-to-provider routes (spec §19.1): POST federation/deliver and GET federation/keys/{address}.
// No API key: the calling provider signs each request (relay/federation/inbound.ts checks it). Every
// answer of federation/deliver says `accepted`; a refusal keeps the usual error fields beside it.

import { AmpError, isAmpError, MAX_REQUEST_BYTES } from '../../../proto/index.js';
import type { FederationInbound, ProviderHeaders } from '../../relay/federation/index.js';
import { tooLargeError } from './body.js';
import { errorReply } from './respond.js';
import type { RouteTable } from './route-table.js';
import type { HttpReply, HttpRequest } from './router.js';

const PUBLIC = { auth: 'none' } as const;

export function addFederationRoutes(t: RouteTable, federation: FederationInbound | undefined): void {
  t.api('POST', '/federation/deliver', PUBLIC, (req) => accepted(() => deliver(federation, req)), {
    streamBody: true,
  });
  t.api('GET', '/federation/keys/:address', PUBLIC, async (req) => {
    const address = req.params.address.toLowerCase();
    const fingerprint = req.query.get('fingerprint') ?? '';
    const key = await enabled(federation).key(providerHeaders(req), address, fingerprint);
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (key.key_revoked) headers['X-AMP-Key-Revoked'] = fingerprint;
    return { status: 200, body: key, headers };
  });
}

async function deliver(federation: FederationInbound | undefined, req: HttpRequest): Promise<HttpReply> {
  const fed = enabled(federation);
  const raw = await readBody(req);
  const o = await fed.deliver(providerHeaders(req), raw);
  const body: Record<string, unknown> = {
    accepted: true,
    id: o.id,
    delivered: o.status === 'delivered',
    method: o.method,
  };
  if (o.duplicate) body.duplicate = true;
  return { status: 200, body };
}

/** A refusal as `{"accepted": false, "error", "message", …}` with its status and headers. */
async function accepted(fn: () => Promise<HttpReply>): Promise<HttpReply> {
  try {
    return await fn();
  } catch (e) {
    if (!isAmpError(e)) throw e;
    const reply = errorReply(e);
    return { ...reply, body: { accepted: false, ...(reply.body as Record<string, unknown>) } };
  }
}

function enabled(federation: FederationInbound | undefined): FederationInbound {
  if (federation) return federation;
  throw new AmpError('provider_not_trusted', 'Federation is not enabled on this provider', {
    field: 'X-AMP-Provider',
  });
}

function providerHeaders(req: HttpRequest): ProviderHeaders {
  const h = req.headers;
  return { provider: h.ampProvider, timestamp: h.ampTimestamp, signature: h.ampSignature, keyRevoked: h.ampKeyRevoked };
}

/** The raw body (the provider signature covers its exact bytes), at most MAX_REQUEST_BYTES. */
async function readBody(req: HttpRequest): Promise<Buffer> {
  const announced = req.headers.contentLength === '' ? Number.NaN : Number(req.headers.contentLength);
  if (announced > MAX_REQUEST_BYTES) throw tooLargeError(MAX_REQUEST_BYTES, announced);
  const chunks: Buffer[] = [];
  let size = 0;
  await req.body.pipe((chunk) => {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) throw tooLargeError(MAX_REQUEST_BYTES, size);
    chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}
