// The request bodies decoded in proto/ besides route and register (spec §6, §7.1, §15): batch ack,
// keypair rotation, PATCH agents/me. Each refusal is pinned by code, field and message, as clients
// see them over REST.
import { describe, expect, it } from 'vitest';
import {
  type AmpError,
  IMMUTABLE_AGENT_FIELDS,
  MAX_BATCH_ACK_IDS,
  decodeAgentUpdateBody,
  decodeBatchAckBody,
  decodeRotateKeysBody,
  isAmpError,
} from '../../proto/index.js';

function thrown(fn: () => unknown): AmpError {
  try {
    fn();
  } catch (e) {
    expect(isAmpError(e)).toBe(true);
    return e as AmpError;
  }
  throw new Error('expected an AmpError, nothing was thrown');
}

/** code, field and message of the refusal of `fn`. */
const refusal = (fn: () => unknown) => {
  const e = thrown(fn);
  return [e.code, e.field, e.message];
};

const ID = 'msg_1767225600_0123456789abcdef';
const SIG = Buffer.alloc(64, 7).toString('base64');
const PEM = '-----BEGIN PUBLIC KEY-----\nnot parsed here\n-----END PUBLIC KEY-----\n';

describe('decodeBatchAckBody', () => {
  it('returns the ids', () => {
    expect(decodeBatchAckBody({ ids: [ID, 'msg-1-ABC'], extra: true })).toStrictEqual({ ids: [ID, 'msg-1-ABC'] });
    const max = Array.from({ length: MAX_BATCH_ACK_IDS }, (_, i) => `msg_1_${i}`);
    expect(decodeBatchAckBody({ ids: max }).ids).toHaveLength(MAX_BATCH_ACK_IDS);
  });

  it.each([
    ['no ids', {}, ['missing_field', 'ids', 'Missing required field: ids']],
    ['null ids', { ids: null }, ['missing_field', 'ids', 'Missing required field: ids']],
    ['ids a string', { ids: ID }, ['missing_field', 'ids', 'Missing required field: ids']],
    ['empty ids', { ids: [] }, ['missing_field', 'ids', 'Missing required field: ids']],
    [
      'too many ids',
      { ids: Array.from({ length: MAX_BATCH_ACK_IDS + 1 }, () => ID) },
      ['invalid_field', 'ids', `at most ${MAX_BATCH_ACK_IDS} ids per batch`],
    ],
    [
      'a path in the ids',
      { ids: [ID, '../../etc/passwd'] },
      ['invalid_field', 'ids', "'../../etc/passwd' is not a valid message id"],
    ],
    ['a number in the ids', { ids: [ID, 42] }, ['invalid_field', 'ids', "'42' is not a valid message id"]],
    [
      'a long bad id (quoted to 64 characters)',
      { ids: ['x'.repeat(200)] },
      ['invalid_field', 'ids', `'${'x'.repeat(64)}' is not a valid message id`],
    ],
  ])('%s', (_name, body, expected) => expect(refusal(() => decodeBatchAckBody(body))).toEqual(expected));

  it('refuses a body that is not an object', () => {
    expect(refusal(() => decodeBatchAckBody([ID]))).toEqual([
      'invalid_request',
      undefined,
      'Request body must be a JSON object',
    ]);
  });
});

describe('decodeRotateKeysBody', () => {
  it('returns the PEM as sent and the decoded proof', () => {
    const r = decodeRotateKeysBody({ new_public_key: PEM, key_algorithm: 'ed25519', proof: SIG });
    expect(r.new_public_key).toBe(PEM);
    expect(Buffer.from(r.proof)).toEqual(Buffer.alloc(64, 7));
    const urlSafe = SIG.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(Buffer.from(decodeRotateKeysBody({ new_public_key: PEM, proof: urlSafe }).proof)).toEqual(
      Buffer.alloc(64, 7),
    );
  });

  const unsupported = (a: string) => `key_algorithm '${a}' is not supported by this provider; only Ed25519 is accepted`;
  it.each([
    ['no key', { proof: SIG }, ['missing_field', 'new_public_key', 'Missing required field: new_public_key']],
    [
      'key null',
      { new_public_key: null, proof: SIG },
      ['missing_field', 'new_public_key', 'Missing required field: new_public_key'],
    ],
    [
      'key not a string',
      { new_public_key: 1, proof: SIG },
      ['invalid_field', 'new_public_key', 'new_public_key must be a PEM string'],
    ],
    [
      'RSA',
      { new_public_key: PEM, key_algorithm: 'RSA', proof: SIG },
      ['invalid_field', 'key_algorithm', unsupported('RSA')],
    ],
    [
      'algorithm not a string',
      { new_public_key: PEM, key_algorithm: 5, proof: SIG },
      ['invalid_field', 'key_algorithm', unsupported('5')],
    ],
    ['no proof', { new_public_key: PEM }, ['missing_field', 'proof', 'Missing required field: proof']],
    [
      'proof not base64',
      { new_public_key: PEM, proof: 'not base64!' },
      ['invalid_field', 'proof', 'proof must be a base64 Ed25519 signature of 64 bytes'],
    ],
    [
      'proof of 63 bytes',
      { new_public_key: PEM, proof: Buffer.alloc(63).toString('base64') },
      ['invalid_field', 'proof', 'proof must be a base64 Ed25519 signature of 64 bytes'],
    ],
    [
      'proof an object',
      { new_public_key: PEM, proof: { sig: SIG } },
      ['invalid_field', 'proof', 'proof must be a base64 Ed25519 signature of 64 bytes'],
    ],
    // The first problem in check order is the one reported.
    ['key and proof missing', {}, ['missing_field', 'new_public_key', 'Missing required field: new_public_key']],
  ])('%s', (_name, body, expected) => expect(refusal(() => decodeRotateKeysBody(body))).toEqual(expected));

  it('refuses RSA with the supported algorithms in details', () => {
    const e = thrown(() => decodeRotateKeysBody({ new_public_key: PEM, key_algorithm: 'RSA', proof: SIG }));
    expect(e.details).toEqual({ supported: ['Ed25519'] });
  });
});

describe('decodeAgentUpdateBody', () => {
  it('returns only what was sent', () => {
    expect(decodeAgentUpdateBody({})).toStrictEqual({});
    expect(decodeAgentUpdateBody({ delivery: {} })).toStrictEqual({});
    expect(
      decodeAgentUpdateBody({
        alias: 'Ünïcødé',
        delivery: { prefer_websocket: false, webhook_url: null },
        metadata: { team: 'x' },
        capabilities: ['a', 'b'],
        unknown_field: 1,
      }),
    ).toStrictEqual({
      alias: 'Ünïcødé',
      prefer_websocket: false,
      webhook_url: null,
      metadata: { team: 'x' },
      capabilities: ['a', 'b'],
    });
    // §7.1: the webhook fields merge one by one (the URL's SSRF check is the relay's, it resolves names).
    expect(decodeAgentUpdateBody({ delivery: { webhook_url: 'https://x.example/h' } })).toStrictEqual({
      webhook_url: 'https://x.example/h',
    });
    expect(decodeAgentUpdateBody({ delivery: { webhook_secret: 's'.repeat(16) } })).toStrictEqual({
      webhook_secret: 's'.repeat(16),
    });
    expect(decodeAgentUpdateBody({ alias: null })).toStrictEqual({ alias: null });
    expect(decodeAgentUpdateBody({ alias: '😀'.repeat(128) }).alias).toHaveLength(256); // code points count
  });

  it.each(IMMUTABLE_AGENT_FIELDS.map((f) => [f]))('refuses a change of %s, even alongside allowed fields', (f) => {
    expect(refusal(() => decodeAgentUpdateBody({ alias: 'ok', [f]: null }))).toEqual([
      'invalid_field',
      f,
      `'${f}' cannot be changed`,
    ]);
  });

  const aliasMsg = 'alias must be a string of at most 128 characters';
  const capsMsg = 'capabilities: at most 32 strings of at most 64 characters';
  it.each([
    ['alias a number', { alias: 5 }, ['invalid_field', 'alias', aliasMsg]],
    ['alias too long', { alias: 'a'.repeat(129) }, ['invalid_field', 'alias', aliasMsg]],
    ['delivery null', { delivery: null }, ['invalid_field', 'delivery', 'delivery must be an object']],
    ['delivery an array', { delivery: [] }, ['invalid_field', 'delivery', 'delivery must be an object']],
    [
      'a webhook url that is no string',
      { delivery: { webhook_url: 5 } },
      ['invalid_field', 'delivery.webhook_url', 'webhook_url must be a URL of at most 2048 characters'],
    ],
    [
      'a short webhook secret',
      { delivery: { webhook_secret: 's' } },
      ['invalid_field', 'delivery.webhook_secret', 'webhook_url requires a webhook_secret of 16-256 characters'],
    ],
    [
      'a secret with the webhook removed',
      { delivery: { webhook_url: null, webhook_secret: 's'.repeat(16) } },
      ['invalid_field', 'delivery.webhook_secret', 'webhook_secret needs a webhook_url'],
    ],
    [
      'prefer_websocket a string',
      { delivery: { prefer_websocket: 'yes' } },
      ['invalid_field', 'delivery.prefer_websocket', 'prefer_websocket must be true or false'],
    ],
    ['metadata an array', { metadata: [] }, ['invalid_field', 'metadata', 'metadata must be an object']],
    ['metadata null', { metadata: null }, ['invalid_field', 'metadata', 'metadata must be an object']],
    [
      'metadata too big',
      { metadata: { x: 'y'.repeat(16_384) } },
      ['invalid_field', 'metadata', 'metadata must be at most 16384 bytes of JSON'],
    ],
    ['capabilities not an array', { capabilities: 'a' }, ['invalid_field', 'capabilities', capsMsg]],
    ['33 capabilities', { capabilities: Array(33).fill('a') }, ['invalid_field', 'capabilities', capsMsg]],
    ['a long capability', { capabilities: ['a'.repeat(65)] }, ['invalid_field', 'capabilities', capsMsg]],
    ['a number capability', { capabilities: [1] }, ['invalid_field', 'capabilities', capsMsg]],
    // Check order: alias, delivery, metadata, capabilities.
    ['alias and metadata bad', { metadata: [], alias: 5 }, ['invalid_field', 'alias', aliasMsg]],
    [
      'delivery and capabilities bad',
      { capabilities: 1, delivery: 1 },
      ['invalid_field', 'delivery', 'delivery must be an object'],
    ],
  ])('%s', (_name, body, expected) => expect(refusal(() => decodeAgentUpdateBody(body))).toEqual(expected));
});
