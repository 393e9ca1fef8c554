// Logs (pino): JSON lines on stdout, or `pretty` lines for humans (AMP_LOG_FORMAT). Secrets never
// reach a log line: API keys, tokens, signatures and Authorization headers are redacted by path as
// a second line of defence; the code never logs them in the first place.
//
// stdout is written asynchronously, once per event-loop turn (log-stdout.ts): at info level every
// HTTP request is a line. The server's close() waits for the lines (`flushLogs`) before the CLI
// exits; a SIGKILL loses the lines of the last turn or write in flight.

import { type DestinationStream, type Logger, pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { BatchedStdout } from './log-stdout.js';

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

/** How long close() waits for log lines to be written (a reader that stopped reading must not hang it). */
const FLUSH_TIMEOUT_MS = 2000;

let stdout: BatchedStdout | undefined;

/** One asynchronous stdout stream per process, shared by every server it runs. */
function asyncStdout(): DestinationStream {
  stdout ??= new BatchedStdout();
  return stdout;
}

/** Resolves once the logger's lines are written (or after FLUSH_TIMEOUT_MS). */
export function flushLogs(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      logger.flush(done);
    } catch {
      done(); // a destination that cannot flush (closed): nothing more will be written
    }
  });
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
      // For humans: few lines, written synchronously (nothing lost at exit).
      sync: true,
      ignore: 'pid,hostname,service',
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino(options, pretty);
  }
  return pino(options, destination ?? asyncStdout());
}
