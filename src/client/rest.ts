// AmpClient: the REST half of the TypeScript SDK. Every non-2xx answer becomes an AmpApiError
// carrying the wire code, so callers switch on `e.code`, never on message text.

import type { QueuedMessage, RouteResult } from '../../proto/index.js';
import { AmpApiError, type RouteBody } from './api-error.js';
import { type PrivateKey, type PrivateKeyInput, signRoute, toPrivateKey } from './sign.js';
import { AmpSocket, type SocketOptions } from './socket.js';

export { AmpApiError, type RouteBody };

export interface RegisterRequestBody {
  name: string;
  public_key: string;
  tenant?: string;
  key_algorithm?: string;
  alias?: string;
  scope?: { platform: string; repo: string };
  metadata?: Record<string, unknown>;
  capabilities?: string[];
  proof?: { timestamp: number | string; signature: string };
}

export interface Registration {
  address: string;
  short_address: string;
  local_name: string;
  agent_id: string;
  tenant: string;
  api_key: string;
  provider: { name: string; endpoint: string; route_url: string };
  fingerprint: string;
  registered_at: string;
}

export interface PendingList {
  messages: QueuedMessage[];
  count: number;
  remaining: number;
}

export interface ClientOptions {
  /** e.g. `http://127.0.0.1:23000` (the `/api/v1` prefix is added). */
  baseUrl: string;
  apiKey?: string;
  /** The agent's Ed25519 private key (PEM or KeyObject): every route is then signed (spec §10). */
  privateKey?: PrivateKeyInput;
  /** The agent's address, signed as `from`; looked up once with GET agents/me when not given. */
  address?: string;
}

export class AmpClient {
  readonly baseUrl: string;
  readonly api: string;
  apiKey?: string;
  address?: string;
  private readonly privateKey?: PrivateKey;

  constructor(opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.api = `${this.baseUrl}/api/v1`;
    this.apiKey = opts.apiKey;
    this.address = opts.address;
    this.privateKey = opts.privateKey === undefined ? undefined : toPrivateKey(opts.privateKey);
  }

  /**
   * Register an agent; the returned client is authenticated with the new API key, and signs every
   * route when given the private key that matches `body.public_key`.
   */
  static async register(
    baseUrl: string,
    body: RegisterRequestBody,
    opts: { privateKey?: PrivateKeyInput } = {},
  ): Promise<{ client: AmpClient; registration: Registration }> {
    const privateKey = opts.privateKey === undefined ? undefined : toPrivateKey(opts.privateKey);
    const anon = new AmpClient({ baseUrl });
    const registration = await anon.request<Registration>('POST', '/register', body);
    const client = new AmpClient({ baseUrl, apiKey: registration.api_key, address: registration.address, privateKey });
    return { client, registration };
  }

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const h: Record<string, string> = { ...headers };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const res = await fetch(this.api + path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!res.ok) throw AmpApiError.from(res.status, parsed);
    return parsed as T;
  }

  /** Send a message; signed when this client holds a private key (and the body has no signature). */
  async route(body: RouteBody): Promise<RouteResult> {
    if (this.privateKey) body = signRoute(body, await this.ownAddress(), this.privateKey);
    return this.request('POST', '/route', body);
  }

  private async ownAddress(): Promise<string> {
    this.address ??= String((await this.me()).address);
    return this.address;
  }

  pending(limit?: number): Promise<PendingList> {
    return this.request('GET', `/messages/pending${limit === undefined ? '' : `?limit=${limit}`}`);
  }

  ack(id: string): Promise<{ acknowledged: true; already_acked?: true }> {
    return this.request('DELETE', `/messages/pending?id=${encodeURIComponent(id)}`);
  }

  ackBatch(ids: string[]): Promise<{ acknowledged: number }> {
    return this.request('POST', '/messages/pending/ack', { ids });
  }

  read(id: string): Promise<{ read_receipt_sent: boolean; already_read?: true; reason?: string }> {
    return this.request('POST', `/messages/${encodeURIComponent(id)}/read`);
  }

  me(): Promise<Record<string, unknown>> {
    return this.request('GET', '/agents/me');
  }

  health(): Promise<Record<string, unknown>> {
    return this.request('GET', '/health');
  }

  /**
   * Open a WebSocket session (authenticated with this client's API key unless told otherwise); its
   * routes are signed with this client's private key, if any.
   */
  connect(opts: Omit<SocketOptions, 'url'> = {}): AmpSocket {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/api/v1/ws`;
    return new AmpSocket({ url, apiKey: this.apiKey, privateKey: this.privateKey, ...opts });
  }
}
