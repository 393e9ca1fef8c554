// amp-relay serve | print-env | check-config | keygen | admin-token | admin | signing-keys | rotate-signing-key |
// version | help

import { BACKUP_USAGE, backupOrRestore } from './cli/backup.js';
import { generateEd25519Pem } from './crypto/sign.js';
import { adminCommand } from './cli/admin.js';
import { adminTokenCommand, CliUsageError } from './cli/admin-token.js';
import { checkConfig, printEnv, warnUnknownVariables } from './cli/config-commands.js';
import { ConfigError, describeFlags, flagKey, loadConfig, optionType, type Config } from './config/schema.js';
import { NoSigningKeysError, SigningKeys } from './identity/signing-keys.js';
import { PARENT_AT_START as NPM_PARENT, startedByNpm, watchParent } from './ops/parent-watch.js';
import { type ServerHandle, startServer } from './server.js';
import { VERSION } from './version.js';

const USAGE = `amp-relay ${VERSION}: Agent Messaging Protocol provider

Usage:
  amp-relay serve [options]      Run the server (HTTP + WebSocket, LMDB store under --data-dir)
  amp-relay print-env [options]  Print every setting in force as an env file (# comment lines,
                                 then NAME=value) for sh 'set -a; . FILE', systemd, docker --env-file
  amp-relay check-config [opts]  Validate the configuration and exit (0 = valid): every setting,
                                 unknown AMP_*/AID_* variables, and that the data dir is writable
  amp-relay keygen               Print a new Ed25519 private key and its public key (PEM)
  amp-relay admin-token --email E --tenant T --scopes "S ..." [--ttl SECONDS] [options]
                                 Mint an AID admin JWT (scopes: agent_registrations:read,
                                 agent_registrations:write, aid:introspect, amp:admin) signed with
                                 the key set in --data-dir (never creates keys); its issuer is
                                 --public-url/<tenant>, else http://localhost:<--port>/<tenant>
                                 (https://localhost:<--port>/<tenant> with AMP_TLS_CERT/KEY)
  amp-relay admin login [--tenant T] [--scopes S,...] [--ttl SECONDS] [--url BASE] [options]
                                 Print a one-time sign-in link to the admin console (/admin)
  amp-relay admin <registrations|agents|queues|audit> ...
                                 Operate a running server over its API (token minted from
                                 --data-dir, or --token); 'amp-relay admin --help' for more
  amp-relay signing-keys [opts]  List the AID token-signing keys in --data-dir (signing, next, retired)
  amp-relay rotate-signing-key [--immediate] [options]
                                 Publish a new token-signing key; it signs 10 min later (at once
                                 with --immediate, for a compromised key). The old key stays in
                                 the JWKS 30 days after its last token. A running server picks it up.
${BACKUP_USAGE}
  amp-relay version              Print the version
  amp-relay help                 Show this help

Every option can also be set by its environment variable; flags win over the environment.
An AMP_* or AID_* variable that is not a setting is an error for check-config and a warning
for serve (with the closest name: did you mean AMP_PORT?).
Options:
${describeFlags().join('\n')}

Examples:
  amp-relay serve                                   # port 23000, data in ./data
  AMP_PORT=8080 amp-relay serve --data-dir /var/lib/amp-relay
  amp-relay serve --host 127.0.0.1 --signatures required
`;

class UsageError extends Error {}

/** Commands whose `--help` / `-h` prints their lines of USAGE (admin has its own help; serve prints it all). */
const COMMAND_HELP = [
  'print-env',
  'check-config',
  'keygen',
  'admin-token',
  'signing-keys',
  'rotate-signing-key',
  'backup',
  'restore',
  'version',
];
const TAKES_NO_OPTIONS = ['keygen', 'version'];

/** `cmd`'s lines of USAGE (its line and the indented ones after it), then the options when it takes them. */
export function commandUsage(cmd: string): string {
  const lines = USAGE.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`  amp-relay ${cmd} `));
  let end = start + 1;
  while (end < lines.length && /^ {20,}\S/.test(lines[end])) end++;
  const options = TAKES_NO_OPTIONS.includes(cmd)
    ? ''
    : `\nOptions (each can also be set by its environment variable; flags win):\n${describeFlags().join('\n')}\n`;
  return `Usage:\n${lines.slice(start, end).join('\n')}\n${options}`;
}

const wantsHelp = (rest: string[]) => rest.includes('--help') || rest.includes('-h');

function parseFlags(args: string[]): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const key = flagKey(name);
    if (!key) throw new UsageError(`unknown option '${name}'`);
    if (eq >= 0) flags[key] = arg.slice(eq + 1);
    else if (optionType(key) === 'bool') flags[key] = true;
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) flags[key] = args[++i];
    else throw new UsageError(`option '${name}' needs a value`);
  }
  return flags;
}

function config(args: string[]): Config {
  return loadConfig({ env: process.env, flags: parseFlags(args) });
}

async function serve(args: string[]): Promise<void> {
  const cfg = config(args);
  // The handlers go in before the server starts: a supervisor's SIGTERM that comes while it starts
  // (just after "listening" is logged, say) is kept and honoured once it is up, never the default kill.
  let server: ServerHandle | undefined;
  let requested: string | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (!server) {
      requested ??= signal;
      return;
    }
    if (stopping) {
      server.logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    const s = server;
    s.logger.info({ signal }, 'shutting down');
    s.close().then(
      () => process.exit(0),
      (e) => {
        s.logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (startedByNpm()) {
    watchParent(NPM_PARENT, () => {
      server?.logger.warn({ npmPid: NPM_PARENT }, 'the npm process that started this server is gone: shutting down');
      stop('parent-exit');
    });
  }
  server = await startServer({ ...cfg });
  warnUnknownVariables(process.env, server.logger);
  if (requested) stop(requested);
}

/** `signing-keys` lists the token-signing keys; `rotate-signing-key [--immediate]` adds one first. */
async function signingKeys(cmd: string, rest: string[]): Promise<number> {
  const immediate = rest.includes('--immediate');
  if (immediate && cmd === 'signing-keys') throw new UsageError("--immediate belongs to 'rotate-signing-key'");
  const cfg = config(rest.filter((a) => a !== '--immediate'));
  // Both refuse a data dir without keys (a wrong --data-dir) rather than creating a key set no server uses.
  const opts = { rotationDays: cfg.aidKeyRotationDays };
  let keys = await SigningKeys.open(cfg.dataDir, cfg.aidJwtAlg, opts);
  if (cmd === 'rotate-signing-key') {
    keys = await SigningKeys.load(cfg.dataDir, cfg.aidJwtAlg, opts);
    const k = await keys.rotate({ immediate });
    process.stderr.write(
      immediate
        ? `new key ${k.kid} signs now\n`
        : `new key ${k.kid} is published now and signs from ${k.activates_at}\n`,
    );
  }
  process.stdout.write(JSON.stringify({ keys: keys.status() }, null, 2) + '\n');
  return 0;
}

function keygen(): number {
  const { privatePem, publicPem } = generateEd25519Pem();
  process.stdout.write(privatePem);
  process.stdout.write(publicPem);
  return 0;
}

/** Runs one command; resolves with the exit code, or -1 when the process keeps running (serve). */
async function run(cmd: string, rest: string[]): Promise<number> {
  if (COMMAND_HELP.includes(cmd) && wantsHelp(rest)) {
    process.stdout.write(commandUsage(cmd));
    return 0;
  }
  switch (cmd) {
    case 'serve':
      if (wantsHelp(rest)) break;
      await serve(rest);
      return -1;
    case 'print-env':
      return printEnv(config(rest));
    case 'check-config':
      return checkConfig(process.env, parseFlags(rest));
    case 'admin-token':
      return adminTokenCommand(rest, config);
    case 'admin':
      return adminCommand(rest, config);
    case 'signing-keys':
    case 'rotate-signing-key':
      return signingKeys(cmd, rest);
    case 'keygen':
      return keygen();
    case 'backup':
    case 'restore':
      return backupOrRestore(cmd, rest, config);
    case 'version':
    case '--version':
      process.stdout.write(VERSION + '\n');
      return 0;
    case 'help':
    case '--help':
    case '-h':
      break;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
  process.stdout.write(USAGE);
  return 0;
}

/**
 * A reader that stops early (`amp-relay keygen | head -1`) closes the pipe; the next write fails
 * with EPIPE. That is the reader's choice, not our failure: no stack trace, and the command ends
 * with the exit code it would have had (0 for output cut short, 2 for a usage error whose help
 * went unread). Not for `serve`, whose stdout is its log: a server whose log pipe breaks should
 * not go on silently.
 */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      // A write after the pipe broke fails as a destroyed stream: the same closed pipe.
      if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
    });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd = 'help', ...rest] = argv;
  if (cmd !== 'serve' || wantsHelp(rest)) endQuietlyOnClosedPipe();
  try {
    return await run(cmd, rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`amp-relay: ${e.message}\nRun 'amp-relay --help' for usage.\n`);
      return 2;
    }
    if (e instanceof ConfigError || e instanceof CliUsageError || e instanceof NoSigningKeysError) {
      process.stderr.write(`amp-relay: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`amp-relay: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
