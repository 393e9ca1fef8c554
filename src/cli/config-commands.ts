// The configuration commands of the CLI: `print-env`, `check-config`, and the warning `serve` logs
// for AMP_* / AID_* variables that are not settings.

import { dataDirProblem } from '../config/data-dir-check.js';
import { describeEnv } from '../config/env-file.js';
import { type Config, ConfigError, loadConfig, OPTIONS } from '../config/schema.js';
import { describeUnknown, unknownVariables } from '../config/unknown-env.js';
import type { ServerHandle } from '../server.js';
import { VERSION } from '../version.js';

type Env = Record<string, string | undefined>;
type Flags = Record<string, string | boolean>;

/** `print-env`: the settings in force, as an env file (see src/config/env-file.ts). */
export function printEnv(cfg: Config): number {
  const header = `amp-relay ${VERSION}: the settings in force. Reads back with sh (set -a; . ./file), systemd (EnvironmentFile=) and docker (--env-file)`;
  process.stdout.write(describeEnv(cfg, header).join('\n') + '\n');
  return 0;
}

/**
 * `check-config`: the settings, unknown AMP_* / AID_* variables, and whether the data dir can be
 * created and written. Every problem at once on stderr; 0 = valid, 2 = not.
 */
export function checkConfig(env: Env, flags: Flags): number {
  const problems: string[] = [];
  try {
    loadConfig({ env, flags });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  problems.push(...unknownVariables(env).map(describeUnknown));
  const fromFlag = typeof flags.dataDir === 'string';
  const dataDir = fromFlag ? String(flags.dataDir) : env.AMP_DATA_DIR || OPTIONS.dataDir.default;
  const dirProblem = dataDirProblem(dataDir, fromFlag ? '--data-dir' : 'AMP_DATA_DIR');
  if (dirProblem) problems.push(dirProblem);
  if (problems.length) {
    process.stderr.write(`amp-relay: ${new ConfigError(problems).message}\n`);
    return 2;
  }
  process.stdout.write('configuration is valid\n');
  return 0;
}

/** `serve`: one warning line per variable that looks like a setting but is not one (it is ignored). */
export function warnUnknownVariables(env: Env, logger: ServerHandle['logger']): void {
  for (const u of unknownVariables(env))
    logger.warn({ variable: u.name, suggestion: u.suggestion }, `${describeUnknown(u)}: ignored`);
}
