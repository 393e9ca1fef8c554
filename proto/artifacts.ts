// Generated artifacts: the AMP and AID error catalogs and the body JSON Schemas as files, for
// clients in other languages. `npm run gen` writes them to proto/generated/; a test fails when they drift.

import { AID_ERROR_ALIASES, AID_ERROR_CATALOG, type AidErrorSpec } from './aid-errors.js';
import { CLOSE } from './close-codes.js';
import { ERROR_ALIASES, ERROR_CATALOG } from './errors.js';
import { BatchAckSchema, PayloadSchema, RegisterBodySchema, RouteBodySchema } from './schemas.js';

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

/** The AMP catalog as published (errors.json, and the OpenAPI document's x-error-catalogs). */
export function ampErrorsJson(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(ERROR_CATALOG).map(([code, e]) => [
      code,
      { http_status: e.status, ws_close: e.wsClose, retry: e.retry, used_for: e.doc },
    ]),
  );
}

/** The AID catalog as published (aid-errors.json, and the OpenAPI document's x-error-catalogs). */
export function aidErrorsJson(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(AID_ERROR_CATALOG as Record<string, AidErrorSpec>).map(([code, e]) => [
      code,
      { http_status: e.status, ...(e.alsoStatus && { also_http_status: e.alsoStatus }), used_for: e.doc },
    ]),
  );
}

export function generatedArtifacts(): Record<string, string> {
  return {
    'errors.json': json({ errors: ampErrorsJson(), aliases: ERROR_ALIASES, ws_close_codes: CLOSE }),
    'aid-errors.json': json({
      $comment: 'Agent Identity errors (spec/agent-identity.md §15); bodies are {error, error_description, errors[]}',
      errors: aidErrorsJson(),
      aliases: AID_ERROR_ALIASES,
    }),
    'schemas.json': json({
      $comment: 'Shapes only; grammar, size and policy rules are in spec/amp-provider.md',
      route_body: RouteBodySchema,
      payload: PayloadSchema,
      register_body: RegisterBodySchema,
      batch_ack_body: BatchAckSchema,
    }),
  };
}
