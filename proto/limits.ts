// Size limits (spec §8.3) and other protocol constants. Units are in the names.

export const MAX_REQUEST_BYTES = 1_048_576;
export const MAX_SUBJECT_CHARS = 256; // code points
export const MAX_MESSAGE_BYTES = 65_536; // UTF-8 bytes of payload.message
export const MAX_CONTEXT_BYTES = 262_144; // compact JSON bytes of payload.context
export const MAX_STORED_MESSAGE_BYTES = 524_288; // compact JSON of {envelope, payload}
export const MAX_WS_FRAME_BYTES = 1_114_112;
/**
 * Largest frame a WebSocket session reads before it is authenticated: an auth frame is a few
 * hundred bytes, and nothing bigger is decoded for an unknown peer (issue 13: deep JSON pre-auth).
 */
export const MAX_PREAUTH_FRAME_BYTES = 4096;
export const MAX_ALIAS_CHARS = 128;
export const MAX_METADATA_BYTES = 16_384;
export const MAX_CAPABILITIES = 32;
export const MAX_CAPABILITY_CHARS = 64;
export const MAX_BATCH_ACK_IDS = 1000;
export const DEFAULT_PENDING_LIMIT = 10;
export const MAX_PENDING_LIMIT = 100;
export const MAX_FUTURE_SKEW_S = 60;
/**
 * How old a signed proof of key possession may be: AMP key recovery (§4.3), AID token and status
 * proofs (agent-identity §6.1, §6.2). AID applies it both ways; AMP bounds the future by
 * MAX_FUTURE_SKEW_S.
 */
export const PROOF_WINDOW_S = 300;
/** How long a used proof is remembered: past it, its timestamp is outside the window either way. */
export const PROOF_REPLAY_TTL_S = 2 * PROOF_WINDOW_S;
export const AMP_VERSION = 'amp/0.1';
export const DISCOVERY_VERSION = 'AMP1';

export const PRIORITIES = ['urgent', 'high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const PAYLOAD_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const IDEMPOTENCY_KEY_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Number of Unicode code points in a string. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

const ISO_DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})$/;

/** Milliseconds since the epoch of an ISO 8601 date-time with zone, or null if it is not one. */
export function parseIsoDateTime(s: string): number | null {
  if (!ISO_DATE_TIME_RE.test(s)) return null;
  // Date.parse wants "+hh:mm"; accept "+hhmm" too.
  const fixed = s.replace(/([+-]\d{2})(\d{2})$/, '$1:$2').replace(' ', 'T');
  const ms = Date.parse(fixed);
  return Number.isFinite(ms) ? ms : null;
}

// A route formats the same millisecond several times (timestamp, queued_at, delivered_at), and
// messages routed in one millisecond share it: the last answer is kept.
let lastIsoMs = NaN;
let lastIso = '';

/** ISO 8601 UTC with milliseconds, as every response writes times. */
export function isoTime(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}
