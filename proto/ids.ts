// Message ids (spec §9), agent ids, API key format (§6).

import { randomBytes, randomFillSync } from 'node:crypto';

/** The format we generate and the official vectors check: `msg_<digits>_<lowercase hex>`. */
export const GENERATED_MESSAGE_ID_RE = /^msg_[0-9]+_[a-f0-9]+$/;
/** What we accept from clients (ack, read, in_reply_to, thread_id): the reference CLI's pattern. */
export const ACCEPTED_MESSAGE_ID_RE = /^msg[_-][0-9]+[_-][A-Za-z0-9]+$/;
export const MAX_MESSAGE_ID_CHARS = 128;

export const API_KEY_RE = /^amp_(live|test)_sk_[0-9a-f]{64}$/;
export const AGENT_ID_RE = /^agt_[0-9a-f]{24}$/;

// Message ids are made on every route: CSPRNG bytes are drawn 4 KiB at a time (one call per 512
// ids) rather than 8 bytes per id, which cost a few microseconds each in randomBytes' fixed overhead.
const ID_POOL_BYTES = 4096;
const idPool = Buffer.alloc(ID_POOL_BYTES);
let idPoolOffset = ID_POOL_BYTES;

/** `msg_<unix seconds>_<16 lowercase hex>` from 8 CSPRNG bytes. */
export function newMessageId(nowMs: number = Date.now()): string {
  if (idPoolOffset + 8 > ID_POOL_BYTES) {
    randomFillSync(idPool);
    idPoolOffset = 0;
  }
  const hex = idPool.toString('hex', idPoolOffset, idPoolOffset + 8);
  idPoolOffset += 8;
  return `msg_${Math.floor(nowMs / 1000)}_${hex}`;
}

/** True for ids in the strict generated format (the official `message_id_validation` vectors). */
export function isGeneratedMessageId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_MESSAGE_ID_CHARS && GENERATED_MESSAGE_ID_RE.test(id);
}

/** True for ids a client may send us. Ids are lookup keys, never paths: no `/`, `.`, or `%`. */
export function isAcceptedMessageId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_MESSAGE_ID_CHARS && ACCEPTED_MESSAGE_ID_RE.test(id);
}

export function newAgentId(): string {
  return 'agt_' + randomBytes(12).toString('hex');
}

export function newApiKey(kind: 'live' | 'test' = 'live'): string {
  return `amp_${kind}_sk_` + randomBytes(32).toString('hex');
}

export function newSessionId(): string {
  return 'ses_' + randomBytes(12).toString('hex');
}
