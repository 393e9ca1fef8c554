// JSON Schemas (TypeBox) of the REST bodies, compiled once. Shape only: the grammar, size and
// policy checks that need better messages than a schema gives live next to each decoder.

import { Type, type TSchema, type Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { AmpError, missingField } from './errors.js';

const NullableString = Type.Optional(Type.Union([Type.String(), Type.Null()]));

export const PayloadSchema = Type.Object(
  {
    type: Type.String(),
    message: Type.String(),
    context: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()])),
  },
  { additionalProperties: true },
);

/** Flat route body (§12.1); `null` means absent. */
export const RouteBodySchema = Type.Object(
  {
    to: Type.String(),
    subject: Type.String(),
    payload: PayloadSchema,
    priority: NullableString,
    in_reply_to: NullableString,
    thread_id: NullableString,
    expires_at: NullableString,
    signature: NullableString,
    from: NullableString,
    idempotency_key: NullableString,
    options: Type.Optional(
      Type.Union([
        Type.Object(
          { receipt: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])) },
          { additionalProperties: true },
        ),
        Type.Null(),
      ]),
    ),
  },
  { additionalProperties: true },
);
export type RouteBody = Static<typeof RouteBodySchema>;

export const RegisterBodySchema = Type.Object(
  {
    name: Type.String(),
    public_key: Type.String(),
    tenant: NullableString,
    key_algorithm: NullableString,
    alias: NullableString,
    agent_id: NullableString,
    scope: Type.Optional(
      Type.Union([
        Type.Object(
          { platform: Type.Optional(Type.String()), repo: Type.Optional(Type.String()) },
          { additionalProperties: true },
        ),
        Type.Null(),
      ]),
    ),
    delivery: Type.Optional(
      Type.Union([
        Type.Object(
          {
            webhook_url: NullableString,
            webhook_secret: NullableString,
            prefer_websocket: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
          },
          { additionalProperties: true },
        ),
        Type.Null(),
      ]),
    ),
    metadata: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()])),
    capabilities: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
    proof: Type.Optional(
      Type.Union([
        Type.Object(
          { timestamp: Type.Union([Type.Integer(), Type.String()]), signature: Type.String() },
          { additionalProperties: true },
        ),
        Type.Null(),
      ]),
    ),
  },
  { additionalProperties: true },
);
export type RegisterBody = Static<typeof RegisterBodySchema>;

export const BatchAckSchema = Type.Object({ ids: Type.Array(Type.String()) }, { additionalProperties: true });

export function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

/** `/payload/type` -> `payload.type` */
function fieldOf(path: string): string {
  return path.replace(/^\//, '').replace(/\//g, '.');
}

/**
 * Throw the AMP error for the first schema violation: a missing required property is
 * `missing_field`, anything else `invalid_field`; both name the field.
 */
export function assertShape<T extends TSchema>(check: TypeCheck<T>, value: unknown): asserts value is Static<T> {
  if (check.Check(value)) return;
  const first = check.Errors(value).First();
  if (!first) throw new AmpError('invalid_request', 'Request body does not match the expected shape');
  const field = fieldOf(first.path);
  if (first.type === ValueErrorType.ObjectRequiredProperty) throw missingField(field);
  const expected = describeSchema(first.schema);
  throw new AmpError('invalid_field', `Field '${field}' must be ${expected}`, { field });
}

function describeSchema(schema: TSchema): string {
  const parts: string[] = [];
  const walk = (s: TSchema) => {
    if (s.anyOf) for (const x of s.anyOf as TSchema[]) walk(x);
    else if (s.type === 'null') parts.push('null');
    else if (s.type === 'integer') parts.push('an integer');
    else if (s.type === 'array') parts.push('an array');
    else if (s.type === 'object') parts.push('an object');
    else if (typeof s.type === 'string') parts.push(`a ${s.type}`);
  };
  walk(schema);
  return parts.length ? parts.join(' or ') : 'valid';
}
