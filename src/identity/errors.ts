// AID errors (agent-identity §15): made from a catalog code (proto/aid-errors.ts), which gives the
// status; every body carries both shapes clients read, the OAuth one and the JSON:API one.

import {
  AID_ERROR_CATALOG,
  aidErrorBody,
  type AidAltStatus,
  type AidErrorBody,
  type AidErrorCode,
} from '../../proto/index.js';

export interface AidErrorOptions<C extends AidErrorCode> {
  /** One of the other statuses the catalog lists for this code (e.g. 401 `invalid_proof` at the status poll). */
  status?: AidAltStatus<C>;
  headers?: Record<string, string>;
}

export class AidError<C extends AidErrorCode = AidErrorCode> extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: C,
    readonly description: string,
    opts: AidErrorOptions<C> = {},
  ) {
    super(description);
    this.name = 'AidError';
    this.status = opts.status ?? AID_ERROR_CATALOG[code].status;
    this.headers = opts.headers ?? {};
  }

  body(): AidErrorBody {
    return aidErrorBody(this.status, this.code, this.description);
  }
}
