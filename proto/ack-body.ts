// Decoding a batch ack (spec §15): `{ids: [...]}`, 1 to MAX_BATCH_ACK_IDS message ids. One bad id
// refuses the whole batch, so nothing is acked by a request that is partly wrong.

import { AmpError, invalidField, missingField } from './errors.js';
import { isAcceptedMessageId } from './ids.js';
import { MAX_BATCH_ACK_IDS } from './limits.js';
import { BatchAckSchema, assertShape, compile } from './schemas.js';

const checkBatchAck = compile(BatchAckSchema);

export interface BatchAckRequest {
  ids: string[];
}

export function decodeBatchAckBody(body: unknown): BatchAckRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  // Checked before the schema, for the errors clients have always had: `ids` that is not a
  // non-empty array is missing, and a bad element is named by its value under the field `ids`.
  const ids = (body as Record<string, unknown>).ids;
  if (!Array.isArray(ids) || ids.length === 0) throw missingField('ids');
  if (ids.length > MAX_BATCH_ACK_IDS) throw invalidField('ids', `at most ${MAX_BATCH_ACK_IDS} ids per batch`);
  for (const id of ids)
    if (!isAcceptedMessageId(id)) throw invalidField('ids', `'${String(id).slice(0, 64)}' is not a valid message id`);
  // By now the published shape holds; asserting it types the value without a cast.
  assertShape(checkBatchAck, body);
  return { ids: body.ids };
}
