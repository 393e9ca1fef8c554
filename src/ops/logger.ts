// Logs (pino): JSON lines on stdout, or `pretty` lines for humans (AMP_LOG_FORMAT). Secrets never
// reach a log line: API keys, tokens, signatures and Authorization headers are redacted by path as
// a second line of defence; the code never logs them in the first place.
//
// stdout is written asynchronously (sonic-boom, sync: false): at info level every HTTP request is
// a line, and a synchronous write(2) per request would put the terminal or the log collector's
// pipe on the request path. Lines written while a write is in flight go out together in the next
// one; whatever is buffered is flushed when the process exits (pino registers that).

import { type DestinationStream, type Logger, pino } from 'pino';
import pinoPretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

const REDACT_PATHS = [
  'api_key',
  '*.api_key',
  'token',
  '*.token',
  'signature',
  '*.signature',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'private_key',
  '*.private_key',
];

let stdout: DestinationStream | undefined;

/** One asynchronous stdout stream per process, shared by every server it runs. */
function asyncStdout(): DestinationStream {
  stdout ??= pino.destination({ dest: 1, sync: false });
  return stdout;
}

/**
 * The server's logger. `destination` replaces stdout (tests read the lines from a stream); with
 * `pretty`, lines are formatted for humans (no colours unless stdout is a terminal).
 */
export function createLogger(level: string, format: LogFormat = 'json', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'amp-relay' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (format === 'pretty') {
    const pretty = pinoPretty({
      destination: destination ?? 1,
      sync: destination !== undefined,
      ignore: 'pid,hostname,service',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino(options, pretty);
  }
  return pino(options, destination ?? asyncStdout());
}
