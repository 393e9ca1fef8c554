// The AMP error catalog (spec §21): every wire code with its HTTP status, the WebSocket close code
// used when the error ends a session, and whether a client should retry. A code that is not in
// this table is a bug, so `AmpError` only accepts catalog codes.

export interface ErrorSpec {
  readonly status: number;
  /** Close code when this error terminates a WebSocket session; null = answered as an error frame. */
  readonly wsClose: number | null;
  readonly retry: boolean;
  readonly doc: string;
}

export const ERROR_CATALOG = {
  invalid_request: { status: 400, wsClose: null, retry: false, doc: 'bad JSON, non-object, bad frame, bad query' },
  missing_field: { status: 400, wsClose: null, retry: false, doc: 'required field absent' },
  invalid_field: {
    status: 400,
    wsClose: null,
    retry: false,
    doc: 'grammar, enum, type, unsupported key_algorithm, past expires_at, bad signature encoding, non-updatable field',
  },
  timestamp_future: { status: 400, wsClose: null, retry: false, doc: 'timestamp more than 60 s ahead' },
  unauthorized: { status: 401, wsClose: 4003, retry: false, doc: 'missing, invalid, expired or revoked API key' },
  forbidden: {
    status: 403,
    wsClose: null,
    retry: false,
    doc: 'from mismatch, other tenant, missing admin scope, rotate from grace key, cross-tenant denied',
  },
  tenant_access_denied: { status: 403, wsClose: null, retry: false, doc: 'registration refused in tenant' },
  agent_suspended: { status: 403, wsClose: 4003, retry: false, doc: 'caller suspended' },
  recipient_suspended: { status: 403, wsClose: null, retry: false, doc: 'recipient suspended' },
  key_revoked: { status: 403, wsClose: 4003, retry: false, doc: 'key on the revocation list' },
  signature_invalid: { status: 403, wsClose: 4003, retry: false, doc: 'signature did not verify' },
  not_found: { status: 404, wsClose: null, retry: false, doc: 'unknown recipient, message, agent or path' },
  method_not_allowed: { status: 405, wsClose: null, retry: false, doc: 'wrong method on a known path' },
  name_taken: { status: 409, wsClose: null, retry: false, doc: 'name in use or held' },
  key_already_registered: { status: 409, wsClose: null, retry: false, doc: 'key belongs to another agent' },
  duplicate_idempotency_key: {
    status: 409,
    wsClose: null,
    retry: false,
    doc: 'same idempotency key, different request',
  },
  request_too_large: { status: 413, wsClose: 1009, retry: false, doc: 'body over 1 MiB' },
  payload_too_large: { status: 413, wsClose: null, retry: false, doc: 'subject/message/context/stored-message limit' },
  external_provider: { status: 422, wsClose: null, retry: false, doc: 'recipient on another provider, no federation' },
  signature_missing: { status: 422, wsClose: null, retry: false, doc: 'unsigned while signatures are required' },
  attachments_not_supported: {
    status: 422,
    wsClose: null,
    retry: false,
    doc: 'payload.attachments without the capability',
  },
  // §22 attachments
  attachment_not_found: { status: 404, wsClose: null, retry: false, doc: "unknown attachment id, or another agent's" },
  attachment_expired: { status: 410, wsClose: null, retry: false, doc: 'attachment past its lifetime' },
  attachment_pending: { status: 409, wsClose: null, retry: true, doc: 'attachment not scanned yet' },
  attachment_held: { status: 409, wsClose: null, retry: false, doc: 'suspicious attachment awaiting human approval' },
  attachment_rejected: { status: 422, wsClose: null, retry: false, doc: 'attachment rejected by the scan or an admin' },
  attachment_already_used: { status: 409, wsClose: null, retry: false, doc: 'attachment carried by another message' },
  too_many_attachments: { status: 400, wsClose: null, retry: false, doc: 'more than 10 attachments in one message' },
  attachment_quota_exceeded: {
    status: 429,
    wsClose: null,
    retry: true,
    doc: 'too many attachments, or bytes, uploaded and not yet sent by this agent',
  },
  attachment_too_large: { status: 413, wsClose: null, retry: false, doc: 'declared size over 25 MiB' },
  attachments_too_large: { status: 413, wsClose: null, retry: false, doc: "one message's attachments over 100 MiB" },
  invalid_digest_algorithm: { status: 422, wsClose: null, retry: false, doc: 'digest is not sha256:<64 hex>' },
  upload_url_invalid: { status: 403, wsClose: null, retry: false, doc: 'upload URL signature missing or wrong' },
  upload_url_expired: { status: 410, wsClose: null, retry: false, doc: 'upload URL past its expiry' },
  upload_already_used: { status: 409, wsClose: null, retry: false, doc: 'second PUT to a single-use upload URL' },
  upload_size_mismatch: {
    status: 422,
    wsClose: null,
    retry: false,
    doc: 'uploaded bytes differ from the declared size',
  },
  upload_digest_mismatch: {
    status: 422,
    wsClose: null,
    retry: false,
    doc: 'uploaded bytes differ from the declared digest',
  },
  upload_incomplete: { status: 409, wsClose: null, retry: false, doc: 'confirm before the upload finished' },
  // §19 federation and mesh
  provider_not_trusted: {
    status: 403,
    wsClose: null,
    retry: false,
    doc: 'federation: provider unknown, not allowed, or its signature does not verify with its discovered key',
  },
  key_mismatch: {
    status: 403,
    wsClose: null,
    retry: false,
    doc: "federation: sender_public_key is not the key of the sender's home provider",
  },
  recipient_not_found: { status: 404, wsClose: null, retry: false, doc: 'federation: no such agent here' },
  replay_detected: {
    status: 409,
    wsClose: null,
    retry: false,
    doc: 'federation/mesh: a message id or MAC already seen, with other content',
  },
  queue_full: { status: 429, wsClose: null, retry: true, doc: 'recipient queue at maximum' },
  rate_limited: { status: 429, wsClose: null, retry: true, doc: 'rate-limit bucket empty' },
  internal_error: { status: 500, wsClose: 1011, retry: true, doc: 'bug' },
  insufficient_storage: {
    status: 507,
    wsClose: null,
    retry: true,
    doc: 'the store cannot write: disk full or LMDB map full; nothing was stored',
  },
  store_unavailable: { status: 503, wsClose: null, retry: true, doc: 'the shared store (NATS) is unreachable' },
  service_unavailable: { status: 503, wsClose: 4500, retry: true, doc: 'store down, shutting down, overloaded' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** The JSON body of every non-2xx AMP answer. */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
  field?: string;
  details: Record<string, unknown>;
  suggestions?: string[];
  retry_after?: number;
}

export interface AmpErrorOptions {
  field?: string;
  details?: Record<string, unknown>;
  /** Seconds; adds body `retry_after` and the `Retry-After` header. */
  retryAfter?: number;
  suggestions?: string[];
  headers?: Record<string, string>;
  /** Where the spec gives a code another status than the catalog's (§22: 422 `invalid_field`). */
  status?: number;
}

export class AmpError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field?: string;
  readonly details: Record<string, unknown>;
  readonly retryAfter?: number;
  readonly suggestions?: string[];
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message: string, opts: AmpErrorOptions = {}) {
    super(message);
    this.name = 'AmpError';
    this.code = code;
    this.status = opts.status ?? ERROR_CATALOG[code].status;
    this.field = opts.field;
    this.details = opts.details ?? {};
    this.retryAfter = opts.retryAfter;
    this.suggestions = opts.suggestions;
    this.headers = opts.headers;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: this.code, message: this.message, details: this.details };
    if (this.field !== undefined) body.field = this.field;
    if (this.suggestions !== undefined) body.suggestions = this.suggestions;
    if (this.retryAfter !== undefined) body.retry_after = this.retryAfter;
    return body;
  }
}

export function isAmpError(e: unknown): e is AmpError {
  return e instanceof AmpError;
}

/** Error spellings other implementations send for the same condition (§21); ours never sends them. */
export const ERROR_ALIASES: Readonly<Record<string, ErrorCode>> = {
  invalid_signature: 'signature_invalid',
  invalid_recipient: 'not_found',
  invalid_token: 'unauthorized',
};

// Small constructors for the errors raised most often, so messages stay uniform.
export const missingField = (field: string) =>
  new AmpError('missing_field', `Missing required field: ${field}`, { field });

export const invalidField = (field: string, message: string, details?: Record<string, unknown>) =>
  new AmpError('invalid_field', message, { field, details });

export const tooLarge = (field: string, what: string, limit: number, actual: number, unit: string) =>
  new AmpError('payload_too_large', `${what} exceeds the limit of ${limit} ${unit} (got ${actual})`, {
    field,
    details: { limit, actual },
  });
