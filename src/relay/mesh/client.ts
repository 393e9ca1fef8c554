// Requests to mesh peers (spec §19.2), each authenticated for that peer: `X-AMP-Mesh-Host` (our
// self_id), a fresh `X-AMP-Timestamp`, and `X-AMP-Mesh-Auth` (HMAC with the shared secret) or
// `X-AMP-Mesh-Signature` (Ed25519 by our provider key) over "<timestamp>.<raw body>". It also
// remembers whether each peer answered its last request (the `hosts_reachable` of /v1/health).

import { meshAuthHeader, signRequest } from '../../crypto/request-signing.js';
import { type PrivateKey, privateKeyFromPem } from '../../crypto/sign.js';
import { VERSION } from '../../version.js';
import type { MeshConfig, MeshHost } from './config.js';

export const MESH_HOST_HEADER = 'X-AMP-Mesh-Host';
export const MESH_AUTH_HEADER = 'X-AMP-Mesh-Auth';
export const MESH_SIGNATURE_HEADER = 'X-AMP-Mesh-Signature';
export const TIMESTAMP_HEADER = 'X-AMP-Timestamp';

export interface PeerReply {
  status: number;
  headers: Headers;
  text: string;
}

export class MeshClient {
  private readonly key: PrivateKey;
  /** Peer id → whether its last request (or probe) got an HTTP answer. */
  private readonly reachable = new Map<string, boolean>();

  constructor(
    readonly config: MeshConfig,
    providerPrivatePem: string,
  ) {
    this.key = privateKeyFromPem(providerPrivatePem);
  }

  host(id: string): MeshHost | undefined {
    return this.config.hosts.find((h) => h.id === id);
  }

  /** The authentication headers of one request to `host` (a fresh timestamp each time). */
  authHeaders(host: MeshHost, raw: string, nowMs = Date.now()): Record<string, string> {
    const ts = String(Math.floor(nowMs / 1000));
    const headers: Record<string, string> = { [MESH_HOST_HEADER]: this.config.selfId, [TIMESTAMP_HEADER]: ts };
    if (host.auth.kind === 'secret') headers[MESH_AUTH_HEADER] = meshAuthHeader(host.auth.secret, ts, raw);
    else headers[MESH_SIGNATURE_HEADER] = signRequest(this.key, ts, raw);
    return headers;
  }

  /** POST `<peer>/v1<path>` with `body` (JSON), signed; rejects on a network error or `signal`. */
  async post(
    host: MeshHost,
    path: string,
    body: unknown,
    signal: AbortSignal,
    extra: Record<string, string> = {},
  ): Promise<PeerReply> {
    const raw = JSON.stringify(body);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': `amp-relay/${VERSION}`,
      ...extra,
      ...this.authHeaders(host, raw),
    };
    return this.send(host, `${host.url}/v1${path}`, { method: 'POST', headers, body: raw, signal });
  }

  /** GET `<peer>/v1/health` (no authentication): is the peer up? Never rejects. */
  async probe(host: MeshHost, timeoutMs: number): Promise<boolean> {
    try {
      const r = await this.send(host, `${host.url}/v1/health`, { signal: AbortSignal.timeout(timeoutMs) });
      this.reachable.set(host.id, r.status < 500);
      return r.status < 500;
    } catch {
      return false;
    }
  }

  private async send(host: MeshHost, url: string, init: RequestInit): Promise<PeerReply> {
    try {
      const res = await fetch(url, { ...init, redirect: 'manual' });
      const text = await res.text();
      this.reachable.set(host.id, true);
      return { status: res.status, headers: res.headers, text };
    } catch (e) {
      this.reachable.set(host.id, false);
      throw e;
    }
  }

  isReachable(id: string): boolean {
    return this.reachable.get(id) === true;
  }

  /** Whether the peer answered its last request; undefined before the first. */
  lastAnswered(id: string): boolean | undefined {
    return this.reachable.get(id);
  }

  /** How many peers answered their last request. */
  reachableCount(): number {
    let n = 0;
    for (const ok of this.reachable.values()) if (ok) n++;
    return n;
  }
}
