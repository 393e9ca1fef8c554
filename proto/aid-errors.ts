// The AID error catalog (agent-identity §15), beside the AMP one in errors.ts: every code with its
// HTTP status and what it answers. A code that is not in this table is a bug, so AidError (in
// src/identity/errors.ts) is made from a catalog code and takes its status from here.
//
// A few codes have a second status, each for one named situation: the spec gives `invalid_proof`
// 400 at the token endpoint and 401 at the status poll (§4.2, §5, §15), and `access_denied` 200 in
// poll bodies and 403 in strict polling; a body over the 16 KiB limit (§1) is 413
// `invalid_request`. Those are `alsoStatus`, and only they may be asked for in place of `status`.

export interface AidErrorSpec {
  readonly status: number;
  readonly doc: string;
  /** The other statuses the spec gives this code, each with the situation it is for. */
  readonly alsoStatus?: Readonly<Record<number, string>>;
}

export const AID_ERROR_CATALOG = {
  authorization_pending: { status: 200, doc: 'status poll body: the registration still waits for approval' },
  access_denied: {
    status: 200,
    doc: 'status poll body: the registration was rejected (compat mode)',
    alsoStatus: { 403: 'a rejection under AID_STRICT_RFC8628_POLLING' },
  },
  invalid_request: {
    status: 400,
    doc: 'parameter missing or malformed, body not JSON or form',
    alsoStatus: { 413: 'body over 16 KiB (§1)' },
  },
  unsupported_grant_type: { status: 400, doc: 'grant_type is not urn:aid:agent-identity' },
  invalid_grant: { status: 400, doc: 'agent_address or identity document refused' },
  invalid_proof: {
    status: 400,
    doc: 'token proof refused: encoding, window, signature or replay (§5 step 7, §6.1)',
    alsoStatus: { 401: 'status poll: wrong fingerprint, or the status proof refused (§4.2, §6.2)' },
  },
  invalid_scope: { status: 400, doc: 'a requested scope is outside the role' },
  invalid_target: { status: 400, doc: 'unknown resource or audience' },
  invalid_client: { status: 401, doc: 'X-API-Key missing or not of this tenant; introspection caller refused' },
  invalid_token: { status: 401, doc: 'admin JWT missing, invalid, expired or of another tenant' },
  insufficient_scope: { status: 403, doc: 'admin JWT without the needed scope, or an agent token' },
  forbidden: { status: 403, doc: 'AMP key of another tenant' },
  agent_not_registered: { status: 403, doc: 'no live registration for this key in this tenant' },
  registration_pending: { status: 403, doc: 'token asked while the registration waits for approval' },
  agent_suspended: { status: 403, doc: 'token asked while the registration is suspended' },
  not_found: { status: 404, doc: 'unknown tenant, registration or code' },
  expired_token: { status: 410, doc: 'status poll: the pending request expired' },
  validation_failed: { status: 422, doc: 'registration fields, unknown role, audit filters' },
  already_registered: { status: 422, doc: 'fingerprint or address held by a live registration' },
  invalid_transition: { status: 422, doc: "action not allowed in the registration's status" },
  slow_down: { status: 429, doc: 'status polled faster than the interval' },
  rate_limited: { status: 429, doc: 'rate-limit bucket empty, or too many pending registrations (§14)' },
  server_error: { status: 500, doc: 'bug' },
  temporarily_unavailable: { status: 503, doc: 'store down, shutting down' },
} as const satisfies Record<string, AidErrorSpec>;

export type AidErrorCode = keyof typeof AID_ERROR_CATALOG;

/** The statuses code `C` may take in place of its own: those its catalog entry lists. */
export type AidAltStatus<C extends AidErrorCode> = (typeof AID_ERROR_CATALOG)[C] extends {
  alsoStatus: infer A;
}
  ? keyof A & number
  : never;

/** Spellings other servers use for the same condition (§15); our clients accept them, we never send them. */
export const AID_ERROR_ALIASES: Readonly<Record<string, AidErrorCode>> = {
  expired_code: 'expired_token',
  denied: 'access_denied',
};

/** The body of every AID error answer (§15): the OAuth shape and the JSON:API shape at once. */
export interface AidErrorBody {
  error: string;
  error_description: string;
  errors: [{ status: string; code: string; detail: string }];
}

/** Also for errors that reach the AID surface from elsewhere (an AMP body-reading error). */
export function aidErrorBody(status: number, code: string, description: string): AidErrorBody {
  return {
    error: code,
    error_description: description,
    errors: [{ status: String(status), code, detail: description }],
  };
}
