// What the SDK's REST and WebSocket halves share: the error every non-2xx answer becomes, and the
// body of a route request.

export class AmpApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details: Record<string, unknown> = {},
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'AmpApiError';
  }

  static from(status: number, body: unknown): AmpApiError {
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    return new AmpApiError(
      status,
      typeof b.error === 'string' ? b.error : `http_${status}`,
      typeof b.message === 'string' ? b.message : `HTTP ${status}`,
      typeof b.field === 'string' ? b.field : undefined,
      (b.details as Record<string, unknown>) ?? {},
      body,
    );
  }
}

export interface RouteBody {
  to: string;
  /** Optional: the sender's own full or short address (the server knows it from the API key). */
  from?: string;
  subject: string;
  payload: { type: string; message: string; context?: Record<string, unknown> | null; [k: string]: unknown };
  priority?: 'urgent' | 'high' | 'normal' | 'low';
  in_reply_to?: string;
  thread_id?: string;
  expires_at?: string;
  /** Filled in by a client that holds its private key (see signMessage). */
  signature?: string;
  options?: { receipt?: boolean };
  idempotency_key?: string;
}
