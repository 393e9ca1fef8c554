// JSON logs (pino). Secrets never reach a log line: API keys, tokens and Authorization headers
// are redacted by path as a second line of defence; the code never logs them in the first place.

import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'amp-relay' },
    redact: {
      paths: ['api_key', '*.api_key', 'token', '*.token', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
