// amp-relay serve | print-env | check-config | keygen | admin-token | signing-keys | rotate-signing-key | version | help

import { BACKUP_USAGE, backupOrRestore } from './cli/backup.js';
import { generateEd25519Pem } from './crypto/sign.js';
import {
  ConfigError,
  describeEnv,
  describeFlags,
  flagKey,
  loadConfig,
  optionType,
  type Config,
} from './config/schema.js';
import { issuerOf, mintAdminToken } from './identity/admin-tokens.js';
import { SigningKeys } from './identity/signing-keys.js';
import { startServer } from './server.js';
import { VERSION } from './version.js';

const USAGE = `amp-relay ${VERSION}: Agent Messaging Protocol provider

Usage:
  amp-relay serve [options]      Run the server (HTTP + WebSocket, LMDB store under --data-dir)
  amp-relay print-env [options]  Print every setting as AMP_* environment variables
  amp-relay check-config [opts]  Validate the configuration and exit (0 = valid)
  amp-relay keygen               Print a new Ed25519 private key and its public key (PEM)
  amp-relay admin-token --email E --tenant T --scopes "S ..." [--ttl SECONDS] [options]
                                 Mint an AID admin JWT (scopes: agent_registrations:read,
                                 agent_registrations:write, aid:introspect, amp:admin) signed with
                                 the key set in --data-dir; its issuer is --public-url/<tenant>
  amp-relay signing-keys [opts]  List the AID token-signing keys in --data-dir (signing, next, retired)
  amp-relay rotate-signing-key [--immediate] [options]
                                 Publish a new token-signing key; it signs 10 min later (at once
                                 with --immediate, for a compromised key). The old key stays in
                                 the JWKS 30 days after its last token. A running server picks it up.
${BACKUP_USAGE}
  amp-relay version              Print the version
  amp-relay help                 Show this help

Every option can also be set by its environment variable; flags win over the environment.
Options:
${describeFlags().join('\n')}

Examples:
  amp-relay serve                                   # port 23000, data in ./data
  AMP_PORT=8080 amp-relay serve --data-dir /var/lib/amp-relay
  amp-relay serve --host 127.0.0.1 --signatures required
`;

class UsageError extends Error {}

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
  const server = await startServer({ ...cfg });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      server.logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (e) => {
        server.logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `admin-token`: its own flags (--email, --tenant, --scopes, --ttl), the rest configure. */
async function adminToken(rest: string[]): Promise<number> {
  const own: Record<string, string> = {};
  const configArgs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const m = /^--(email|tenant|scopes|ttl)(?:=(.*))?$/.exec(rest[i]);
    if (!m) configArgs.push(rest[i]);
    else if (m[2] !== undefined) own[m[1]] = m[2];
    else if (i + 1 < rest.length) own[m[1]] = rest[++i];
    else throw new UsageError(`option '--${m[1]}' needs a value`);
  }
  for (const need of ['email', 'tenant', 'scopes']) if (!own[need]) throw new UsageError(`admin-token needs --${need}`);
  const cfg = config(configArgs);
  const keys = await SigningKeys.load(cfg.dataDir, cfg.aidJwtAlg, { rotationDays: cfg.aidKeyRotationDays });
  const issuer = issuerOf(cfg.publicUrl || `http://localhost:${cfg.port}`, own.tenant.toLowerCase());
  try {
    const token = await mintAdminToken(keys, {
      issuer,
      tenant: own.tenant.toLowerCase(),
      email: own.email,
      scopes: own.scopes.split(/[\s,]+/).filter(Boolean),
      ttlSeconds: own.ttl === undefined ? undefined : Number(own.ttl),
    });
    process.stdout.write(token + '\n');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return 0;
}

/** `signing-keys` lists the token-signing keys; `rotate-signing-key [--immediate]` adds one first. */
async function signingKeys(cmd: string, rest: string[]): Promise<number> {
  const immediate = rest.includes('--immediate');
  if (immediate && cmd === 'signing-keys') throw new UsageError("--immediate belongs to 'rotate-signing-key'");
  const cfg = config(rest.filter((a) => a !== '--immediate'));
  const keys = await SigningKeys.load(cfg.dataDir, cfg.aidJwtAlg, { rotationDays: cfg.aidKeyRotationDays });
  if (cmd === 'rotate-signing-key') {
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
  switch (cmd) {
    case 'serve':
      if (rest.includes('--help') || rest.includes('-h')) break;
      await serve(rest);
      return -1;
    case 'print-env':
      process.stdout.write(describeEnv(config(rest)).join('\n') + '\n');
      return 0;
    case 'check-config':
      config(rest);
      process.stdout.write('configuration is valid\n');
      return 0;
    case 'admin-token':
      return adminToken(rest);
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

export async function main(argv: string[]): Promise<number> {
  const [cmd = 'help', ...rest] = argv;
  try {
    return await run(cmd, rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`amp-relay: ${e.message}\nRun 'amp-relay --help' for usage.\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`amp-relay: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`amp-relay: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
