// WebSocket close codes (spec §17.7). 40xx: fix something before reconnecting. 45xx and the 1xxx
// codes other than 1000/1009: reconnect with exponential backoff (1 s doubling to 60 s, jittered).

export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  AUTH_TIMEOUT: 4001,
  AUTH_REQUIRED: 4002,
  AUTH_FAILED: 4003,
  REPLACED: 4009,
  SERVER_SHUTDOWN: 4500,
  SLOW_CONSUMER: 4501,
  IDLE_TIMEOUT: 4502,
  OVERLOADED: 4503,
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];

/** Whether a client should reconnect (with backoff) after the server closed with `code`. */
export function shouldReconnect(code: number): boolean {
  if (code >= 4500 && code <= 4599) return true;
  if (code >= 1000 && code <= 1999) return code !== CLOSE.NORMAL && code !== CLOSE.MESSAGE_TOO_BIG;
  return false;
}

export const RECONNECT_BASE_MS = 1000;
export const RECONNECT_MAX_MS = 60_000;
